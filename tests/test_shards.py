"""Shards: `mmlightning optimize` writes a config's splits as LitData shards; `--data.SPLIT=shards://DIR` trains,
tests and predicts from them exactly as from the loose files; a folder that is missing, unfinished, truncated or
written for another model is refused in one message."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mmlightning.cli.main import main
from mmlightning.processing import MediaRoot, Processor, StoredRoot

from conftest import main_in, write_rows

SMALL = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 2, "enable_progress_bar": False, "logger": False, "default_root_dir": "runs"},
    "model": {
        "encoders": {
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}},
            "image": {"class_path": "TimmEncoder", "init_args": {"model_name": "test_resnet", "image_size": 32}},
        },
        "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16}},
        "heads": {"label": {"class_path": "ClassificationHead"}},
        "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
    },
}


def config_for(shapes_data: Path, **data) -> dict:
    files = {"train": str(shapes_data / "train.jsonl"), "val": str(shapes_data / "val.jsonl"), "batch_size": 16}
    return {**SMALL, "data": {**files, "num_workers": 0, **data}}


@pytest.fixture(scope="module")
def shards(shapes_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("shards")
    (work / "config.yaml").write_text(yaml.safe_dump(config_for(shapes_data)))
    assert main(["optimize", "--config", str(work / "config.yaml"), "--out", str(work / "shards")]) == 0
    return work


def test_optimize_writes_every_split_whole_with_each_file_once(shards, shapes_data):
    for split, count in (("train", 96), ("val", 48)):
        folder = shards / "shards" / split
        meta = json.loads((folder / "mmlightning.json").read_text())
        assert meta["rows"] == count and meta["files"] == ["image"]  # text is not a file: not stored twice
        rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
        source = [json.loads(line) for line in (shapes_data / f"{split}.jsonl").read_text().splitlines()]
        assert [r["values"] for r in rows] == source and [r["line"] for r in rows] == list(range(1, count + 1))
        index = json.loads((folder / "index.json").read_text())
        assert sum(c["chunk_size"] for c in index["chunks"]) == count
    assert not list(shards.glob("shards/.*"))  # no staging folder left


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_from_shards_is_the_run_from_loose_files(shards, shapes_data, tmp_path, workers):
    loose = tmp_path / "loose"
    streamed = tmp_path / "streamed"
    loose.mkdir()
    streamed.mkdir()
    whole = main_in(loose, config_for(shapes_data, num_workers=workers), "fit")
    folder = shards / "shards"
    config = config_for(shapes_data, num_workers=workers)
    config["data"].update(train=f"shards://{folder / 'train'}", val=f"shards://{folder / 'val'}")
    found = main_in(streamed, config, "fit")
    assert whole["epochs"] == found["epochs"] == 2
    for key in ("val/loss", "val/label/acc", "train/loss_epoch"):
        assert found[key] == whole[key], key  # exactly: the same samples, augmentation and order
    if workers:
        return
    ckpt = next((streamed / "runs").rglob("last.ckpt"))
    saved = yaml.safe_load(next((streamed / "runs").rglob("config.yaml")).read_text())
    (streamed / "run.yaml").write_text(yaml.safe_dump(saved))
    for args in (
        ["test", f"--data.test=shards://{folder / 'val'}"],
        ["test", f"--data.test={shapes_data / 'val.jsonl'}"],
    ):
        tested = main_in(streamed, saved, *args, f"--ckpt_path={ckpt}")
        assert tested["test/label/acc"] == found["val/label/acc"]
    predicted = []
    for source in (f"shards://{folder / 'val'}", shapes_data / "val.jsonl"):
        out = streamed / "predictions.jsonl"
        main_in(
            streamed, saved, "predict", f"--data.predict={source}", f"--ckpt_path={ckpt}", f"--predictions_path={out}"
        )
        predicted.append([json.loads(line) for line in out.read_text().splitlines()])
    assert len(predicted[0]) == 48 and predicted[0] == predicted[1]


def said(capsys, args: list[str]) -> str:
    try:
        code = main(args)
    except SystemExit as exited:
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


def test_bad_shard_folders_are_refused_in_one_message(shards, shapes_data, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_for(shapes_data)))

    def fit(train: Path | str) -> str:
        return said(capsys, ["fit", "--config", str(config), f"--data.train=shards://{train}"])

    assert "No shard folder" in fit(tmp_path / "absent")
    cut = tmp_path / "cut"
    shutil.copytree(shards / "shards" / "train", cut)
    chunk = next(cut.glob("chunk-*.bin"))
    chunk.write_bytes(chunk.read_bytes()[:1000])
    assert f"truncated: chunk {chunk.name} is 1000 bytes" in fit(cut)
    (cut / "mmlightning.json").unlink()
    assert "incomplete: no mmlightning.json" in fit(cut)

    text_only = json.loads(json.dumps(config_for(shapes_data)))  # a model that reads no file: no files stored
    del text_only["model"]["encoders"]["image"]
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(text_only))
    assert main(["optimize", "--config", str(tmp_path / "text.yaml"), "--out", str(tmp_path / "text")]) == 0
    assert "hold no files for column 'image'" in fit(tmp_path / "text" / "train")

    (tmp_path / "a_file").write_text("")
    for out, reason in (
        (tmp_path / "a_file" / "x", "cannot write a folder there"),
        (shards / "shards", "already exists and is not empty; pass --overwrite"),
        ("s3://bucket/shards", "written to a local or mounted folder"),
    ):
        assert reason in said(capsys, ["optimize", "--config", str(config), "--out", str(out)]), out
    assert not (tmp_path / "a_file").is_dir()


def test_bad_rows_stop_optimize_as_they_stop_fit_or_are_skipped_and_written_out(shapes_data, tmp_path, capsys):
    rows = [json.loads(line) for line in (shapes_data / "train.jsonl").read_text().splitlines()]
    rows[3]["image"] = "images/missing.png"
    write_rows(tmp_path / "train.jsonl", rows)
    shutil.copytree(shapes_data / "images", tmp_path / "images")
    config = config_for(shapes_data, train=str(tmp_path / "train.jsonl"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["optimize", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "out"), "--split", "train"]
    err = said(capsys, args)
    assert "train.jsonl:4" in err and "image file not found: images/missing.png" in err
    assert not (tmp_path / "out" / "train").exists()
    assert main([*args, "--data.on_bad_rows=skip"]) == 0
    assert json.loads((tmp_path / "out" / "train" / "mmlightning.json").read_text())["rows"] == 95
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped_rows_train.jsonl").read_text().splitlines()]
    assert [s["line"] for s in skipped] == [4]


def write_wav(path: Path, rate: int = 8000) -> None:
    import wave

    samples = (np.sin(np.arange(rate // 4) * 0.05) * 20000).astype(np.int16)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())


def test_each_modality_reads_a_stored_file_as_it_reads_the_file_on_disk(tmp_path):
    """The contract: processors read media through ``Processor.resolve``, which gives a file held in memory for
    shards; what they make from it is the same."""
    from mmlightning_audio.processor import AudioProcessor
    from mmlightning_video.clips import moving_square, write_clip
    from mmlightning_video.processor import VideoProcessor
    from mmlightning_vision.encoder import TimmEncoder

    from conftest import write_image

    write_image(tmp_path / "a.png")
    write_wav(tmp_path / "a.wav")
    write_clip(tmp_path / "a.mp4", moving_square(8, 32), audio=np.sin(np.arange(4000) * 0.05) * 0.5, rate=8000)
    processors = {
        "a.png": TimmEncoder(model_name="test_resnet", image_size=32).processor(),
        "a.wav": AudioProcessor(16000, 32, 400, 160, 2.0, False),
        "a.mp4": VideoProcessor(frames=4, size=32, mean=[0.5] * 3, std=[0.5] * 3),
    }
    disk = MediaRoot.make(tmp_path)
    stored = StoredRoot.holding(tmp_path, {name: (tmp_path / name).read_bytes() for name in processors})
    for name, processor in processors.items():
        processor.check(name, stored)
        expected, found = processor(name, disk, False), processor(name, stored, False)
        assert expected.keys() == found.keys()
        for key in expected:
            assert torch.equal(expected[key], found[key]), (name, key)
    sound = AudioProcessor(16000, 32, 400, 160, 2.0, False)(
        "a.mp4", stored, False
    )  # the sound track of the same stored clip
    assert sound is not None and math.isfinite(float(sound[next(iter(sound))].float().sum()))
    with pytest.raises(ValueError, match="not in the shards"):
        Processor.resolve("b.png", stored, "image")


def test_decoded_shards_train_exactly_as_files_and_only_with_the_settings_they_were_made_with(
    shapes_data, tmp_path, capsys
):
    """``optimize --decoded`` stores each picture decoded (the from-scratch text encoder's tokenizer is learnt in
    ``fit``, so its text is not tokenised ahead); a run reads them and gets exactly the loose files' run. A run with
    other image settings reads the stored files instead, and says so."""
    from mmlightning.binding import bind
    from mmlightning.cli.optimize import build
    from mmlightning.data.shards import streaming, unpack

    config = config_for(shapes_data)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "decoded"
    assert main(["optimize", "--config", str(tmp_path / "config.yaml"), "--out", str(out), "--decoded"]) == 0
    meta = json.loads((out / "train" / "mmlightning.json").read_text())
    assert list(meta["decoded"]) == ["image"] and meta["files"] == ["image"]  # the files stay, for previews
    position, files, decoded = unpack(streaming(out / "train")[5], ["image"])
    assert position == 5 and len(files) == 1 and decoded["image"]["rgb"].dtype == torch.uint8
    assert decoded["image"]["rgb"].shape[-1] == 3

    for work in ("loose", "streamed"):
        (tmp_path / work).mkdir()
    whole = main_in(tmp_path / "loose", config, "fit")
    streamed = json.loads(json.dumps(config))
    streamed["data"].update(train=f"shards://{out / 'train'}", val=f"shards://{out / 'val'}")
    found = main_in(tmp_path / "streamed", streamed, "fit")
    for key in ("val/loss", "val/label/acc", "train/loss_epoch"):
        assert found[key] == whole[key], key

    (tmp_path / "streamed.yaml").write_text(yaml.safe_dump(streamed))
    for size, usable in ((32, ("image",)), (40, ())):
        model, data = build(str(tmp_path / "streamed.yaml"), [f"--model.encoders.image.init_args.image_size={size}"])
        bind(model, data)
        capsys.readouterr()
        dataset = data.dataset("train")
        assert dataset.decoded == usable
        assert ("decoded with other processor settings than this run's" in capsys.readouterr().err) == (not usable)
        assert dataset[0]["inputs"]["image"]["pixels"].shape == (3, size, size)
