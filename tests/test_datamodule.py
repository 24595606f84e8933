"""The datamodule: every bad row reported by file, line and reason; skipping writes them out; nothing silent."""

from __future__ import annotations

import json

import pytest

from mmlightning import MultimodalDataModule, MultimodalModule
from mmlightning.data.manifest import read_manifest
from mmlightning.data.validate import BadRowsError
from mmlightning_fusions import ConcatFusion
from mmlightning_heads import ClassificationHead
from mmlightning_text import TextEncoder
from mmlightning_vision import TimmEncoder

from conftest import write_image, write_rows


@pytest.fixture(scope="module")
def model():
    encoders = {
        "text": TextEncoder(dim=16, layers=1, vocab_size=60),
        "image": TimmEncoder("test_resnet", image_size=32, dim=16),
    }
    module = MultimodalModule(
        encoders, ConcatFusion, {"label": lambda dim: ClassificationHead(dim, labels=["pos", "neg"])}
    )
    module.encoders["text"].fit(["a good day", "a bad day", "nothing much"])
    assert module.is_fitted
    return module


@pytest.fixture()
def bad_manifest(tmp_path):
    good = write_image(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    rows = [
        {"id": "1", "text": "fine", "image": good, "label": "pos"},
        {"id": "2", "text": "   ", "image": good, "label": "pos"},
        {"id": "3", "text": "no file", "image": "missing.png", "label": "neg"},
        '{"id": "4", "text": broken json',
        {"id": "5", "text": "bad image", "image": "broken.png", "label": "neg"},
        {"id": "6", "text": "odd label", "image": good, "label": "maybe"},
        {"id": "7", "text": "no label", "image": good},
        {"id": "8", "text": None, "image": good, "label": "neg"},
    ]
    return write_rows(tmp_path / "val.jsonl", rows)


def test_report_names_every_bad_row(model, bad_manifest):
    dm = MultimodalDataModule(val=str(bad_manifest))
    dm.set_bundle(model.bundle())
    with pytest.raises(BadRowsError) as err:
        dm.dataset("val")
    message = str(err.value)
    assert "6 bad row(s) of 8" in message
    for line, reason in [
        (2, "field 'text': empty text"),
        (3, "image file not found: missing.png"),
        (4, "malformed JSON"),
        (5, "unreadable image"),
        (6, "label 'maybe' is not one of the 2 known labels"),
        (7, "field 'label': missing target"),
    ]:
        assert f"val.jsonl:{line}: " in message and reason in message, (line, reason)
    assert "--data.on_bad_rows=skip" in message


def test_skip_policy_writes_skipped_rows(model, bad_manifest, tmp_path):
    skipped = tmp_path / "skipped.jsonl"
    dm = MultimodalDataModule(val=str(bad_manifest), on_bad_rows="skip", skipped_rows_file=str(skipped))
    dm.set_bundle(model.bundle())
    data = dm.dataset("val")
    assert [data[i]["id"] for i in range(len(data))] == ["1", "8"]  # row 8 lacks its text: a missing modality
    assert data[1]["inputs"]["text"] is None
    written = [json.loads(line) for line in skipped.read_text().splitlines()]
    assert sorted(r["line"] for r in written) == [2, 3, 4, 5, 6, 7]
    assert all(r["file"].endswith("val.jsonl") and r["reason"] for r in written)
    assert dm.dataset("val") is data and len(skipped.read_text().splitlines()) == 6  # checked and written once


def test_batches_carry_present_masks(model, tmp_path):
    image = write_image(tmp_path / "a.png")
    rows = [
        {"id": "a", "text": "hello there", "image": image, "label": "pos"},
        {"id": "b", "image": image, "label": "neg"},
    ]
    dm = MultimodalDataModule(train=str(write_rows(tmp_path / "train.jsonl", rows)), batch_size=2)
    dm.set_bundle(model.bundle())
    batch = next(iter(dm._loader("train", shuffle=False)))
    assert batch.inputs["text"]["present"].tolist() == [True, False]
    assert batch.inputs["image"]["pixels"].shape == (2, 3, 32, 32)
    assert batch.targets["label"].tolist() == [0, 1]
    assert batch.ids == ["a", "b"]


def test_absent_column_is_an_error_not_silence(model, tmp_path):
    rows = [{"id": "1", "caption": "hi", "image": write_image(tmp_path / "a.png"), "label": "pos"}]
    dm = MultimodalDataModule(val=str(write_rows(tmp_path / "val.jsonl", rows)))
    dm.set_bundle(model.bundle())
    with pytest.raises(BadRowsError, match="no column 'text'; its columns are id, caption, image, label"):
        dm.dataset("val")
    dm = MultimodalDataModule(val=str(tmp_path / "val.jsonl"), columns={"text": "caption"})
    dm.set_bundle(model.bundle())
    assert len(dm.dataset("val")) == 1


def test_csv_manifest(model, tmp_path):
    image = write_image(tmp_path / "a.png")
    (tmp_path / "val.csv").write_text(
        f"id,text,image,label\n1,hello,{image},pos\n2,,{image},neg\n3,short row\n", encoding="utf-8"
    )
    manifest = read_manifest(tmp_path / "val.csv")
    assert [r.line for r in manifest.rows] == [2, 3] and manifest.rows[1].values["text"] is None
    assert manifest.bad[0].line == 4 and "expected 4 columns" in manifest.bad[0].reason


def test_unknown_manifest_type(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ValueError, match="expected one of .csv, .json, .jsonl, .parquet"):
        read_manifest(tmp_path / "data.txt")
    with pytest.raises(FileNotFoundError, match="Manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_parquet_manifest(model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = write_image(tmp_path / "a.png")
    rows = [
        {"id": "1", "text": "hello", "image": image, "label": "pos"},
        {"id": "2", "text": None, "image": image, "label": "neg"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "val.parquet")
    dm = MultimodalDataModule(val=str(tmp_path / "val.parquet"))
    dm.set_bundle(model.bundle())
    data = dm.dataset("val")
    assert [data[i]["id"] for i in range(2)] == ["1", "2"] and data[1]["inputs"]["text"] is None


def test_a_glob_takes_no_column_the_id_a_target_or_another_encoder_reads(tmp_path, caplog):
    from mmlightning import Processor, TargetCodec
    from mmlightning.bundle import ProcessorBundle

    rows = [{"id": i, "text": "t", "age": 3, "city": "x", "rating": 5, "label": "a"} for i in range(3)]
    write_rows(tmp_path / "train.jsonl", rows)

    def expanded(columns, given=None):
        bundle = ProcessorBundle({"text": Processor(), "record": Processor()}, {"label": TargetCodec()}, given or {})
        data = MultimodalDataModule(train=str(tmp_path / "train.jsonl"), columns=columns)
        data.set_bundle(bundle)
        return data.bundle.columns["record"]

    assert expanded({}, {"record": "*"}) == ["age", "city", "rating"]  # an encoder's own default glob
    with caplog.at_level("INFO", logger="mmlightning"):
        assert expanded({"record": ["*", "!rating"]}) == ["age", "city"]
    assert "'record' reads 2 column(s) (* !rating): age, city" in caplog.text
    assert expanded({"record": ["text", "c*"]}) == ["text", "city"]  # a name is taken as given
    with pytest.raises(Exception, match="match no column that the id, a target or another encoder"):
        expanded({"record": "label*"})


def test_training_targets_pair_with_each_encoders_values(model, tmp_path):
    good = write_image(tmp_path / "ok.png")
    rows = [
        {"id": "1", "text": "one", "image": good, "label": "pos"},
        {"id": "2", "text": None, "image": good, "label": "neg"},  # no text: not among the text's values
        {"id": "3", "text": "three", "image": None, "label": "neg"},
    ]
    dm = MultimodalDataModule(train=str(write_rows(tmp_path / "train.jsonl", rows)))
    dm.set_bundle(model.bundle())
    values, targets = dm.training_values(), dm.training_targets()
    assert values["text"] == ["one", "three"] and targets["text"] == {"label": ["pos", "neg"]}
    assert len(values["image"]) == 2 and targets["image"] == {"label": ["pos", "neg"]}
