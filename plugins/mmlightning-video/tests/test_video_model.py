"""mmlightning-video in a model: video + sound track + text exported to ONNX, the frozen frame encoder's cache, an
uploaded clip served, robustness without each input, clips in the W&B sample table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmlightning_video import VideoEncoder
from mmlightning_video.clips import moving_square, write_clip


def small(**kwargs) -> VideoEncoder:
    args = {"model_name": "test_resnet.r160_in1k", "image_size": 32, "frames": 4, "dim": 16, "heads": 2}
    return VideoEncoder(**{**args, **kwargs})


def clips_dataset(root: Path, count: int = 12) -> tuple[list[dict], Path]:
    """Clips of a square moving one of four ways, every third without a sound track, with a log line."""
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(6000) / 16000)
    rows = []
    for i in range(count):
        direction = ("right", "down", "left", "up")[i % 4]
        name = f"clip{i}.mp4"
        write_clip(
            root / name, moving_square(6, 32, direction, seed=i), audio=None if i % 3 == 2 else tone * (1 + i % 2)
        )
        rows.append({"id": f"c{i}", "video": name, "text": f"door {i % 5} opened", "motion": direction})
    (root / "train.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    return rows, root / "train.jsonl"


def video_audio_text(**video):
    from mmlightning_audio import AudioEncoder
    from mmlightning_text import TextEncoder

    return {
        "video": small(**{"augment": False, **video}),
        "audio": AudioEncoder(dim=16, layers=1, heads=2, sample_rate=16000, n_mels=20, augment=False),
        "text": TextEncoder(dim=16, layers=1, heads=2, vocab_size=60),
    }


def test_video_audio_text_exports_to_onnx_as_it_predicts_also_without_a_sound_track(tmp_path):
    import functools

    from mmlightning.deploy.export import export_model
    from mmlightning.deploy.runtime import Exported
    from mmlightning.model import MultimodalModel
    from mmlightning.trained import TrainedRun
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead

    rows, _ = clips_dataset(tmp_path, 9)
    torch.manual_seed(0)
    model = MultimodalModel(video_audio_text(), functools.partial(ConcatFusion, dim=16), {"motion": ClassificationHead})
    model.fit_data({"video": [r["video"] for r in rows], "audio": [r["video"] for r in rows],
                    "text": [r["text"] for r in rows], "motion": [r["motion"] for r in rows]})  # fmt: skip
    bundle = model.bundle(columns={"audio": "video"})
    report = export_model(model, bundle, rows, tmp_path, tmp_path / "onnx", "onnx", tolerance=1e-4)
    assert "video.frames" in report["inputs"] and "audio.mel" in report["inputs"]
    assert (
        report["parity"]["predictions_agree"] == 1.0 and report["parity"]["rows"] == 9 + 3 + 3 * 9
    )  # two batch sizes, each input removed
    got = Exported.load(tmp_path / "onnx").predict(rows, root=tmp_path)
    want = TrainedRun(model.eval(), bundle).predict(rows, root=tmp_path)
    assert [r["motion"] for r in got] == [r["motion"] for r in want]
    for a, b in zip(got, want):  # rows 2, 5 and 8 have no sound track
        assert a["motion_scores"] == pytest.approx(b["motion_scores"], abs=1e-4)
    silent = bundle([rows[2]], tmp_path)
    assert not silent.inputs["audio"]["present"].any() and silent.inputs["video"]["present"].all()


def fit_motion(tmp_path: Path, cache: bool, epochs: int = 2):
    import functools

    import lightning.pytorch as pl

    from mmlightning import MultimodalDataModule, MultimodalModule
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead

    tmp_path.mkdir(parents=True, exist_ok=True)
    _, manifest = clips_dataset(tmp_path, 12)
    pl.seed_everything(0)
    module = MultimodalModule(
        {"video": small(augment=False, dropout=0.0)},
        functools.partial(ConcatFusion, dim=16),
        {"motion": ClassificationHead},
        freeze=["video.frames"],
        cache_frozen=cache,
    )
    frames_before = {k: v.clone() for k, v in module.model.encoders["video"].frames.state_dict().items()}
    data = MultimodalDataModule(train=str(manifest), val=str(manifest), batch_size=4)
    losses: list[float] = []

    class Losses(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(outputs["loss"]))

    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         default_root_dir=tmp_path, callbacks=[Losses()], deterministic=True)  # fmt: skip
    trainer.fit(module, data)
    return module, losses, frames_before


def test_a_frozen_frame_encoder_is_cached_while_the_temporal_module_trains(tmp_path):
    cached, with_cache, before = fit_motion(tmp_path / "a", cache=True)
    _, without, _ = fit_motion(tmp_path / "b", cache=False)
    assert cached.model.frozen_stems == ["video"] and cached.model.frozen == []
    assert torch.allclose(torch.tensor(with_cache), torch.tensor(without), atol=1e-3)  # the cache changes nothing
    assert cached.model.cache.misses == 12  # each clip's frames encoded once (train and val are the same rows)
    after = cached.model.encoders["video"].frames.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics included
    assert cached.model.encoders["video"].stack.layers[0].attn.q.weight.requires_grad


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A video + sound + text model fitted from the CLI's Python API on a dozen clips (a third without sound)."""
    import mmlightning

    folder = tmp_path_factory.mktemp("clips")
    _, manifest = clips_dataset(folder, 12)
    video = {"model_name": "test_resnet.r160_in1k", "image_size": 32, "frames": 4, "dim": 16, "heads": 2}
    result = mmlightning.fit(
        train=str(manifest),
        val=str(manifest),
        encoders={
            "video": {"class_path": "VideoEncoder", "init_args": {**video, "max_bytes": 60_000}},
            "audio": {"class_path": "AudioEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "n_mels": 20}},
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 60}},
        },
        fusion={"class_path": "ConcatFusion", "init_args": {"dim": 16}},
        heads={"motion": {"class_path": "ClassificationHead"}},
        max_epochs=1,
        trainer={"logger": False, "default_root_dir": str(folder / "runs")},
        data={"batch_size": 4, "columns": {"audio": "video"}},
    )
    return result, folder


def test_serve_takes_an_uploaded_clip_and_refuses_bad_ones_with_the_reason(trained, tmp_path):
    import requests

    import mmlightning
    from mmlightning.deploy.local import served

    result, folder = trained
    want = mmlightning.load(result.checkpoint).predict([{"video": "clip0.mp4", "text": "door 0 opened"}], root=folder)
    noisy = np.random.default_rng(0).integers(0, 256, (24, 96, 96, 3), dtype=np.uint8)
    write_clip(tmp_path / "big.mp4", noisy)  # noise does not compress: over the model's 60 kB limit
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    with served("--ckpt_path", result.checkpoint) as url:
        with open(folder / "clip0.mp4", "rb") as clip:
            got = requests.post(f"{url}/predict", files={"video": clip}, data={"text": "door 0 opened"}, timeout=60)
        assert got.status_code == 200, got.text
        assert got.json()["motion_scores"] == pytest.approx(want[0]["motion_scores"], abs=1e-4)
        for name, status, reason in (
            ("big.mp4", 413, "video file (the upload big.mp4) is 120 kB, over the limit of 60 kB"),
            ("notes.mp4", 400, "unreadable video file (the upload notes.mp4)"),
        ):
            with open(tmp_path / name, "rb") as bad:
                answer = requests.post(f"{url}/predict", files={"video": bad}, timeout=60)
            assert answer.status_code == status and reason in answer.json()["detail"], answer.text
            assert str(tmp_path) not in answer.text  # the server's own folders are not shown


def test_robustness_removes_the_sound_track_alone_and_offers_the_video_corruptions(trained, tmp_path):
    from mmlightning.evaluate.robustness import robustness

    result, folder = trained
    report = robustness(result.checkpoint, out=tmp_path, severities=[1.0])
    conditions = {c["condition"] for c in report["conditions"]}
    assert {"without audio", "without video", "without text"} <= conditions
    assert {f"video {kind} 1" for kind in ("dropped", "frozen", "blur", "noise")} <= conditions
    assert "audio noise 1" in conditions


def test_the_w_and_b_sample_table_shows_a_clip_as_an_animation(tmp_path):
    import wandb
    from PIL import Image

    from mmlightning.wandb import _to_wandb

    write_clip(tmp_path / "c.mp4", moving_square(8, 32))
    shown = _to_wandb(small(frames=4).processor().preview("c.mp4", tmp_path))
    assert isinstance(shown, wandb.Video)
    with Image.open(shown._path) as gif:
        assert gif.n_frames == 4
