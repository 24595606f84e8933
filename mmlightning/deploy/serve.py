"""Serve a trained model over HTTP with LitServe: raw inputs in, decoded predictions and scores out.

    mmlightning serve --ckpt_path RUN/checkpoints/last.ckpt [--export DIR] [--port 8000]
    curl -s localhost:8000/predict -H 'content-type: application/json' \
        -d '{"text": "a red circle", "image": {"base64": "'$(base64 -w0 pic.png)'"}}'

A request is one row: text as a string, a media file as ``{"base64": ...}`` in JSON, or as a file in a multipart
form (``curl -F text='a red circle' -F image=@pic.png``). Any subset of the model's inputs may be given; a
missing one is handled as in training. Requests are batched (``--max_batch_size``). Bad requests (an unknown
field, an undecodable image, no input at all, a payload over ``--max_payload_size``) get a 4xx with the reason.
``/docs`` shows the request schema. Stop it with Ctrl-C, or SIGINT or SIGTERM to its process: LitServe's workers
stop with it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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
            reasons = [self._reason(r, request) for r in self.bundle.check(row, self.media, targets=[])]
            if reasons:
                raise HTTPException(400, "; ".join(reasons).replace(f"{self.media}/", ""))
            return self.bundle.item(row, self.media, ident=str(row.get(self.bundle.id_column, "0")), targets=[])
        except (ValueError, OSError) as err:
            raise HTTPException(400, str(err).replace(f"{self.media}/", "")) from err
        finally:
            for path in written:  # processed (or refused): nothing of a request stays on the server
                path.unlink(missing_ok=True)

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
    bundle = served_bundle(ckpt_path, export)  # here too: the request schema, and a missing folder said at once
    api = ModelAPI(ckpt_path, export, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    limit = size_in_bytes(max_payload_size)
    served = ls.LitServer(api, accelerator="cpu", devices=1, max_payload_size=limit, timeout=60)
    publish_schema(served.app, bundle)
    served.app.add_middleware(RequestGuard, max_size=limit)
    return served


class RequestGuard:
    """Before LitServe sees a request: a 413 from the declared ``Content-Length`` alone, before any of the body is
    read; a JSON body that does not parse is a 400 saying where it broke (LitServe would answer 500)."""

    def __init__(self, app: Any, max_size: int) -> None:
        self.app, self.max_size = app, max_size

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_size:
            detail = f"the request is {int(declared)} bytes, over the limit of {self.max_size} (--max_payload_size)"
            return await self._answer(413, detail, scope, receive, send)
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return await self.app(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_size:
                detail = f"the request is over the limit of {self.max_size} bytes (--max_payload_size)"
                return await self._answer(413, detail, scope, receive, send)
        try:
            json.loads(body)
        except ValueError as err:
            return await self._answer(400, f"the body is not valid JSON ({err})", scope, receive, send)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _answer(status: int, detail: str, scope: Any, receive: Any, send: Any) -> None:
        from fastapi.responses import JSONResponse

        await JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"})(
            scope, receive, send
        )


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
