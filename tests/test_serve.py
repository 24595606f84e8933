"""`serve` keeps clients apart: a bad request in a dynamic batch fails alone, limits are 413s, slow requests 504s,
and no request (random JSON, random bytes as media) gets a 500."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmlightning.deploy.guard import Refused, RequestGuard
from mmlightning.deploy.local import served
from mmlightning.deploy.serve import ModelAPI

from conftest import fit_shapes


@pytest.fixture(scope="module")
def trained(shapes_data, tmp_path_factory):
    return fit_shapes(shapes_data, trainer={"logger": False, "default_root_dir": str(tmp_path_factory.mktemp("serve"))})


@pytest.fixture(scope="module")
def api(trained):
    """The server's model API in this process (what each LitServe worker runs)."""
    found = ModelAPI(trained.checkpoint, max_batch_size=8)
    found.setup("cpu")
    return found


def bomb() -> bytes:
    """A PNG that says it is 30000 x 30000 over a body of a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 30_001 * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def upload(data: bytes) -> dict:
    return {"base64": base64.b64encode(data).decode()}


def test_a_bad_request_in_a_batch_fails_alone_and_its_message_names_only_itself(trained, shapes_data):
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:12]]
    want = {str(i): p["label"] for i, p in enumerate(trained.predict(rows, root=shapes_data))}
    bodies = [{"id": str(i), "text": r["text"], "image": upload((shapes_data / r["image"]).read_bytes())}
              for i, r in enumerate(rows)]  # fmt: skip
    bodies[3] = {"id": "poison", "text": "secret words", "image": upload(b"not a picture at all")}
    bodies[7] = {"id": "bomb", "text": "x", "image": upload(bomb())}
    bodies[9] = {"id": "stranger", "colour": "red"}
    with served("--ckpt_path", trained.checkpoint, "--max_batch_size", "12", "--batch_timeout", "0.5") as url:
        with ThreadPoolExecutor(len(bodies)) as pool:  # sent at once: they are batched together
            answers = list(pool.map(lambda body: requests.post(f"{url}/predict", json=body, timeout=60), bodies))
    for body, answer in zip(bodies, answers):
        if body["id"] in want:
            assert answer.status_code == 200, answer.text
            assert answer.json()["label"] == want[body["id"]]
    poison, bombed, stranger = (answers[i].json()["detail"] for i in (3, 7, 9))
    assert answers[3].status_code == 400 and "field 'image'" in poison
    assert answers[7].status_code == 413 and "image (the upload) is too large to decode safely" in bombed
    assert answers[9].status_code == 400 and "colour" in stranger
    for detail in (poison, bombed, stranger):  # nothing of another client's request
        assert not any(r["text"] in detail for r in rows) and "secret" not in detail.replace("secret words", "")
    assert "colour" not in poison + bombed and "secret words" not in bombed + stranger


def test_the_model_failing_on_one_request_fails_that_request_alone(api, shapes_data, monkeypatch):
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:4]]
    items = [api.decode_request({"id": str(i), "text": r["text"]}) for i, r in enumerate(rows)]
    items.insert(2, api.decode_request({"id": "poison", "text": "a red circle"}))
    collate = api.bundle.collate

    def failing(batch, root):
        if any(item["id"] == "poison" for item in batch):
            raise RuntimeError("a kernel failed")
        return collate(batch, root)

    monkeypatch.setattr(api.bundle, "collate", failing)
    answers = api.predict(items)
    assert answers[2] == Refused(500, "the model failed on this request (RuntimeError); see the server's log")
    assert [a["id"] for i, a in enumerate(answers) if i != 2] == ["0", "1", "2", "3"]


def test_a_request_over_the_time_limit_is_a_504():
    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    guard = RequestGuard(slow, max_size=100, timeout=0.2)
    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 504 and b"within 0.2 s (--timeout)" in sent[1]["body"]


def test_serve_refuses_a_timeout_not_above_the_batch_timeout(trained, capsys):
    from mmlightning.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "--ckpt_path", trained.checkpoint, "--timeout", "0.001"])
    assert done.value.code == 2 and "--timeout" in capsys.readouterr().err


media = st.one_of(
    st.binary(max_size=300),
    st.just(bomb()),
    st.builds(lambda w, h: _png(w, h), st.integers(1, 64), st.integers(1, 64)),
)
value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=200),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    media.map(upload),
    st.fixed_dictionaries({"base64": st.text(max_size=20)}),
)
request = st.one_of(
    st.dictionaries(st.sampled_from(["id", "text", "image", "other"]), value, max_size=4),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=20),
    st.integers(),
)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (width * 3 % 256, 40, height * 3 % 256)).save(out, format="PNG")
    return out.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(request, min_size=1, max_size=5))
def test_fuzz_every_request_gets_a_prediction_or_its_own_4xx(api, batch):
    items = [api.decode_request(body) for body in batch]
    answers = api.predict(items)
    assert len(answers) == len(batch)
    for answer in answers:
        assert isinstance(answer, dict) or (isinstance(answer, Refused) and 400 <= answer.status < 500), answer
    assert not list(Path(api.media).iterdir())  # nothing of a request stays on the server


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), request.map(lambda r: json.dumps(r).encode())))
def test_fuzz_the_server_never_answers_500(server_url, body):
    for kind in ("application/json", "multipart/form-data; boundary=x", "text/plain"):
        answer = requests.post(f"{server_url}/predict", data=body, headers={"content-type": kind}, timeout=60)
        assert answer.status_code < 500, (kind, body, answer.status_code, answer.text)


@pytest.fixture(scope="module")
def server_url(trained):
    with served("--ckpt_path", trained.checkpoint) as url:
        yield url


def test_a_file_uploaded_for_a_text_field_is_refused_not_read_as_its_name(api):
    refused = api.decode_request({"text": {"base64": base64.b64encode(b"hello").decode()}})
    assert refused == Refused(400, "field 'text' takes its value itself (text), not an uploaded file")
