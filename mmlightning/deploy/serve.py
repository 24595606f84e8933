"""Serve a trained model over HTTP with LitServe: raw inputs in, decoded predictions and scores out.

    mmlightning serve --ckpt_path RUN/checkpoints/last.ckpt [--export DIR] [--port 8000]
    curl -s localhost:8000/predict -H 'content-type: application/json' \
        -d '{"text": "a red circle", "image": {"base64": "'$(base64 -w0 pic.png)'"}}'

A request is one row: text as a string, a media file as ``{"base64": ...}`` in JSON, or as a file in a multipart
form (``curl -F text='a red circle' -F image=@pic.png``). Any subset of the model's inputs may be given; a
missing one is handled as in training. Requests are batched (``--max_batch_size``), and each is checked and
answered on its own: a bad request (an unknown field, an undecodable image, no input at all) gets its 400 with
the reason, a payload over ``--max_payload_size`` or a picture over the pixel limit a 413, one not answered within
``--timeout`` a 504, and the requests batched with it are answered as if it had not been sent.
``/docs`` shows the request schema. Stop it with Ctrl-C, or SIGINT or SIGTERM to its process: LitServe's workers
stop with it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException

from mmlightning.bundle import ProcessorBundle
from mmlightning.contracts import Batch
from mmlightning.deploy.guard import IsolatingLoop, Refused, RequestGuard
from mmlightning.errors import OverLimit, TooLargeError

log = logging.getLogger(__name__)


class ModelAPI(ls.LitAPI):
    """The model (a checkpoint on PyTorch, or an exported folder) behind LitServe's batching server."""

    def __init__(self, ckpt_path: str | None = None, export: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not ckpt_path and not export:
            raise ValueError("serve needs --ckpt_path or --export")
        self.ckpt_path, self.export = ckpt_path, export

    def setup(self, device: str) -> None:
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
        self.file_fields = {  # the columns whose values are files (a text column takes no upload)
            column
            for key, processor in self.bundle.processors.items()
            if getattr(processor, "reads_files", True)
            for column in self.bundle.input_columns(key)
        }

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # unannotated: LitServe then parses the body
        try:
            return self._decode(request)
        except HTTPException as err:  # this request alone is refused; the others batched with it are answered
            return Refused(err.status_code, str(err.detail))

    def _decode(self, request: Any) -> dict[str, Any]:
        """One request -> one processed sample; anything wrong is a 400 saying what."""
        row = dict(request.items()) if hasattr(request, "items") else None
        if row is None:
            raise HTTPException(400, "send one row as a JSON object (or a multipart form) of field: value")
        unknown = sorted(set(row) - self.fields)
        if unknown:
            raise HTTPException(400, f"unknown field(s) {unknown}; this model reads {sorted(self.fields)}")
        written: dict[Path, str] = {}  # each uploaded file, and how an error names it
        try:
            row = {key: self._value(key, value, written) for key, value in row.items()}
            if all(self.bundle.value(key, row) is None for key in self.bundle.processors):
                inputs = sorted(self.fields - {self.bundle.id_column})
                raise HTTPException(400, f"no input given; this model reads {inputs}")
            reasons = [self._reason(r, request) for r in self.bundle.check(row, self.media, targets=[])]
            if reasons:
                status = 413 if any(isinstance(r, OverLimit) for r in reasons) else 400  # a picture over the limit
                raise HTTPException(status, self._said("; ".join(reasons), written))
            return self.bundle.item(row, self.media, ident=str(row.get(self.bundle.id_column, "0")), targets=[])
        except (ValueError, OSError) as err:
            status = 413 if isinstance(err, TooLargeError) else 400
            raise HTTPException(status, self._said(str(err), written)) from err
        finally:
            for path in written:  # processed (or refused): nothing of a request stays on the server
                path.unlink(missing_ok=True)

    @staticmethod
    def _said(message: str, written: dict[Path, str]) -> str:
        """An error without the server's temporary names: an upload is named as the client named it."""
        for path, shown in written.items():
            message = message.replace(str(path), shown).replace(path.name, shown)
        return message

    def _reason(self, reason: str, request: Any) -> str:
        """A file "not found" (or outside the media folder) for a path sent as text: the server never reads a path
        it is given; say so."""
        field = re.match(r"field '([^']+)'", reason)
        sent = request.get(field.group(1)) if field and hasattr(request, "get") else None
        if isinstance(sent, str) and ("not found" in reason or "outside the data folder" in reason):
            key = field.group(1) if field else "FIELD"
            return (
                f"field '{key}': the server does not read paths such as {sent!r}; upload the file instead: "
                f'{{"{key}": {{"base64": "..."}}}} in JSON, or a multipart form (curl -F {key}=@FILE)'
            )
        return reason

    def _value(self, key: str, value: Any, written: dict[Path, str]) -> Any:
        """Text stays as it is; ``{"base64": ...}`` or an uploaded file becomes a file in the media folder."""
        upload = hasattr(value, "file") and hasattr(value, "filename")  # a multipart upload
        if (upload or isinstance(value, dict) and "base64" in value) and key not in self.file_fields:
            raise HTTPException(400, f"field '{key}' takes its value itself (text), not an uploaded file")
        if upload:
            data = value.file.read()
        elif isinstance(value, dict) and "base64" in value:
            try:
                data = base64.b64decode(value["base64"], validate=True)
            except (binascii.Error, ValueError, TypeError) as err:
                raise HTTPException(400, f"field '{key}': not valid base64 ({err})") from err
        else:
            return value
        given = Path(str(getattr(value, "filename", None) or "")).name[:100]
        name = f"{uuid.uuid4().hex}-{given or key}"
        written[self.media / name] = f"(the upload {given})" if given else "(the upload)"
        (self.media / name).write_bytes(data)
        return name

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, items: list[Any]) -> list[Any]:
        """Predictions for the batch's good requests; a refused request keeps its :class:`Refused` in its place."""
        answers: list[Any] = list(items)
        good = [i for i, item in enumerate(items) if not isinstance(item, Refused)]
        for i, answer in zip(good, self._answer([items[i] for i in good])):
            answers[i] = answer
        return answers

    def _answer(self, items: list[dict[str, Any]]) -> list[Any]:
        """The model on ``items``; if it fails, each request again on its own, so that only the one it fails on
        gets an error (a 500: it passed every check, so the fault is the server's)."""
        if not items:
            return []
        import torch

        try:
            with torch.inference_mode():
                batch = self.bundle.collate(items, self.media)
                outputs = self.exported.run(batch) if self.export else self.model(Batch(inputs=batch.inputs))
                return self.bundle.decode(outputs, batch.ids)
        except Exception as err:  # noqa: BLE001  # the server's boundary: one request's fault stays with it
            if len(items) > 1:
                return [answer for item in items for answer in self._answer([item])]
            log.exception("the model failed on request %s", items[0].get("id"))
            return [Refused(500, f"the model failed on this request ({type(err).__name__}); see the server's log")]

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: Any) -> Any:
        return output  # a Refused is sent as its own error by IsolatingLoop


def server(
    ckpt_path: str | None = None,
    export: str | None = None,
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    max_payload_size: str = "20MB",
    timeout: float = 30.0,
) -> ls.LitServer:
    """The server: requests batched up to ``max_batch_size``, each checked and answered on its own; a body over
    ``max_payload_size`` is a 413 before it is read; a request not answered within ``timeout`` seconds is a 504."""
    bundle = served_bundle(ckpt_path, export)  # here too: the request schema, and a missing folder said at once
    api = ModelAPI(ckpt_path, export, max_batch_size=max_batch_size, batch_timeout=batch_timeout, loop=IsolatingLoop())
    limit = size_in_bytes(max_payload_size)
    served = ls.LitServer(api, accelerator="cpu", devices=1, max_payload_size=limit, timeout=timeout)
    publish_schema(served.app, bundle)
    served.app.add_middleware(RequestGuard, max_size=limit, timeout=timeout)
    return served


def served_bundle(ckpt_path: str | None, export: str | None) -> ProcessorBundle:
    """The processors of what is served, read without building the model."""
    from mmlightning.errors import MissingFileError

    if export:
        found = Path(export) / "bundle.json"
        if not found.is_file():
            raise MissingFileError(f"--export {export}: no exported model there (no {found}); run `mmlightning export`")
        return ProcessorBundle.load(found)
    from mmlightning.trained import find_checkpoint, read_checkpoint, run_folder

    checkpoint = find_checkpoint(ckpt_path or "")
    state = read_checkpoint(checkpoint).get("mmlightning", {}).get("bundle")
    return ProcessorBundle.from_state(state) if state else ProcessorBundle.load(run_folder(checkpoint) / "bundle.json")


def request_schema(bundle: ProcessorBundle) -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI schemas of a request row, as JSON and as a multipart form: the fields this model reads."""
    upload = {"type": "object", "properties": {"base64": {"type": "string"}}, "required": ["base64"]}
    value = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, upload, {"type": "null"}]}
    readers = {column: key for key in bundle.processors for column in bundle.input_columns(key)}
    json_fields: dict[str, Any] = {bundle.id_column: {"type": "string", "description": "returned with the prediction"}}
    form_fields: dict[str, Any] = dict(json_fields)
    for column, key in readers.items():
        kind = type(bundle.processors[key]).__name__
        about = f"read by encoder '{key}' ({kind}); text as a string, a file as {{\"base64\": ...}}; may be left out"
        json_fields[column] = {**value, "description": about}
        form_fields[column] = {
            "type": "string",
            "format": "binary",
            "description": f"read by encoder '{key}' ({kind}): text, or a file",
        }
    row = {"type": "object", "properties": json_fields, "additionalProperties": False}
    return row, {"type": "object", "properties": form_fields}


def publish_schema(app: Any, bundle: ProcessorBundle) -> None:
    """Put the request schema in the app's OpenAPI document, so ``/docs`` shows what to send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema  # type: ignore[no-any-return]
        schema: dict[str, Any] = generate()
        row, form = request_schema(bundle)
        for operation in schema.get("paths", {}).get("/predict", {}).values():
            operation["summary"] = "Predict one row"
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": row}, "multipart/form-data": {"schema": form}},
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def size_in_bytes(size: str | int) -> int:
    """``"20MB"``, ``"512KB"``, ``"1GB"`` or a number of bytes -> bytes."""
    text = str(size).strip().upper()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)
