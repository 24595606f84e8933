"""Serve a trained model over HTTP with LitServe: raw inputs in, decoded predictions and scores out.

    mmlightning serve --ckpt_path RUN/checkpoints/last.ckpt [--export DIR] [--port 8000]
    curl -s localhost:8000/predict -H 'content-type: application/json' \
        -d '{"text": "a red circle", "image": {"base64": "'$(base64 -w0 pic.png)'"}}'

A request is one row: text as a string, a media file as ``{"base64": ...}`` in JSON, or as a file in a multipart
form (``curl -F text='a red circle' -F image=@pic.png``). Any subset of the model's inputs may be given; a
missing one is handled as in training. Requests are batched (``--max_batch_size``). Bad requests (an unknown
field, an undecodable image, no input at all, a payload over ``--max_payload_size``) get a 4xx with the reason.
Stop it with Ctrl-C (SIGINT to its process group: LitServe's worker processes stop with it).
"""

from __future__ import annotations

import base64
import binascii
import tempfile
import uuid
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException

from mmlightning.bundle import ProcessorBundle
from mmlightning.contracts import Batch


class ModelAPI(ls.LitAPI):
    """The model (a checkpoint on PyTorch, or an exported folder) behind LitServe's batching server."""

    def __init__(self, ckpt_path: str | None = None, export: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not ckpt_path and not export:
            raise ValueError("serve needs --ckpt_path or --export")
        self.ckpt_path, self.export = ckpt_path, export

    def setup(self, device: str) -> None:
        import torch

        torch.set_grad_enabled(False)
        self.media = Path(tempfile.mkdtemp(prefix="mmlightning-serve-"))  # uploaded files live here, and only here
        if self.export:
            from mmlightning.deploy.runtime import Exported

            self.exported = Exported.load(self.export)
            self.bundle: ProcessorBundle = self.exported.bundle
        else:
            from mmlightning.trained import load_run

            trained = load_run(self.ckpt_path or "")
            self.model, self.bundle = trained.model, trained.bundle
        self.fields = set(self.bundle.read_columns(targets=False)) | {self.bundle.id_column}

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # unannotated: LitServe then parses the body
        return self._decode(request)

    def _decode(self, request: Any) -> dict[str, Any]:
        """One request -> one processed sample; anything wrong is a 400 saying what."""
        row = dict(request.items()) if hasattr(request, "items") else None
        if row is None:
            raise HTTPException(400, "send one row as a JSON object (or a multipart form) of field: value")
        unknown = sorted(set(row) - self.fields)
        if unknown:
            raise HTTPException(400, f"unknown field(s) {unknown}; this model reads {sorted(self.fields)}")
        written: list[Path] = []
        try:
            row = {key: self._value(key, value, written) for key, value in row.items()}
            if all(self.bundle.value(key, row) is None for key in self.bundle.processors):
                inputs = sorted(self.fields - {self.bundle.id_column})
                raise HTTPException(400, f"no input given; this model reads {inputs}")
            reasons = self.bundle.check(row, self.media, targets=[])
            if reasons:
                raise HTTPException(400, "; ".join(reasons).replace(f"{self.media}/", ""))
            return self.bundle.item(row, self.media, ident=str(row.get(self.bundle.id_column, "0")), targets=[])
        except (ValueError, OSError) as err:
            raise HTTPException(400, str(err).replace(f"{self.media}/", "")) from err
        finally:
            for path in written:  # processed (or refused): nothing of a request stays on the server
                path.unlink(missing_ok=True)

    def _value(self, key: str, value: Any, written: list[Path]) -> Any:
        """Text stays as it is; ``{"base64": ...}`` or an uploaded file becomes a file in the media folder."""
        if hasattr(value, "file") and hasattr(value, "filename"):  # a multipart upload
            data = value.file.read()
        elif isinstance(value, dict) and "base64" in value:
            try:
                data = base64.b64decode(value["base64"], validate=True)
            except (binascii.Error, ValueError, TypeError) as err:
                raise HTTPException(400, f"field '{key}': not valid base64 ({err})") from err
        else:
            return value
        name = f"{uuid.uuid4().hex}-{Path(str(getattr(value, 'filename', None) or key)).name}"
        written.append(self.media / name)
        written[-1].write_bytes(data)
        return name

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        batch = self.bundle.collate(items, self.media)
        outputs = self.exported.run(batch) if self.export else self.model(Batch(inputs=batch.inputs))  # as exported
        return self.bundle.decode(outputs, batch.ids)

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def server(
    ckpt_path: str | None = None,
    export: str | None = None,
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    max_payload_size: str = "20MB",
) -> ls.LitServer:
    api = ModelAPI(ckpt_path, export, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    limit = size_in_bytes(max_payload_size)
    return ls.LitServer(api, accelerator="cpu", devices=1, max_payload_size=limit, timeout=60)


def size_in_bytes(size: str | int) -> int:
    """``"20MB"``, ``"512KB"``, ``"1GB"`` or a number of bytes -> bytes."""
    text = str(size).strip().upper()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)
