"""Text to image end to end, as a user runs it: a tokenizer run, a generator run from it, a contrastive reranker, then
`mmlightning generate`, `predict` and `serve` on the generator (tiny pictures: bars across or down)."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import pytest
import requests
from PIL import Image

from mmlightning.cli.main import main
from mmlightning.deploy.local import served
from mmlightning.evaluate.generate import generate

from wandb_reader import read_run, records

TOKENIZER = {"image_size": 8, "downsample": 1, "dim": 8, "codebook_size": 8, "hidden": 8}


def args(prefix: str, values: dict) -> list[str]:
    return [f"{prefix}.{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bars")
    rows = []
    for i in range(24):
        across = i % 2 == 0
        image = Image.new("L", (8, 8), 0)
        for j in range(8):
            image.putpixel((j, 2 + i % 4) if across else (2 + i % 4, j), 255)
        image.save(folder / f"{i}.png")
        prompt = (
            ("a bar across", "a flat line")[i % 4 // 2] if across else ("a bar down", "a standing line")[i % 4 // 2]
        )
        rows.append({"id": f"r{i}", "image": f"{i}.png", "text": prompt, "label": "across" if across else "down"})
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def fit(folder: Path, name: str, extra: list[str], logged: bool = False) -> str:
    results = folder / f"{name}.json"
    common = [] if logged else ["--trainer.logger=false"]
    common += [
        f"--data.train={folder / 'data.jsonl'}",
        f"--data.val={folder / 'data.jsonl'}",
        "--data.batch_size=8",
        "--data.num_workers=0",
        "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={folder / name}",
        f"--results_path={results}",
    ]
    assert main(["fit", *extra, *common]) == 0
    return str(Path(json.loads(results.read_text())["checkpoint"]).parents[1])


@pytest.fixture(scope="module")
def runs(bars) -> dict[str, str]:
    """The three runs; the tokenizer's and the generator's logged to W&B (offline) under ``bars/runs/wandb``."""
    where, mode = os.getcwd(), os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"
    os.chdir(bars)
    try:
        return three_runs(bars)
    finally:
        os.chdir(where)
        if mode is None:
            os.environ.pop("WANDB_MODE")
        else:
            os.environ["WANDB_MODE"] = mode


def three_runs(bars: Path) -> dict[str, str]:
    image = ["--model.encoders.image=VQVAEEncoder", *args("--model.encoders.image", TOKENIZER)]
    text = [
        "--model.encoders.text=TextEncoder",
        "--model.encoders.text.dim=16",
        "--model.encoders.text.layers=1",
        "--model.encoders.text.heads=2",
        "--model.encoders.text.max_length=6",
    ]
    fusion = ["--model.fusion=ConcatFusion", "--model.fusion.dim=8"]
    tokenizer = fit(bars, "vq", [*image, *fusion, "--model.heads.pixels=ReconstructionHead"], logged=True)
    generator = fit(
        bars,
        "gen",
        [
            *text,
            *image,
            *fusion,
            "--model.heads.picture=ImageGenerationHead",
            *args("--model.heads.picture", {"width": 16, "layers": 1, "heads": 2, "previews": 2}),
            "--model.freeze=[image]",
            "--model.tuning+=InitFrom",
            f"--model.tuning.checkpoint={tokenizer}/checkpoints/last.ckpt",
            "--model.tuning.parts=[encoders.image]",
        ],
        logged=True,
    )
    clip = fit(
        bars,
        "clip",
        [
            *text,
            *image,
            *fusion,
            "--model.heads.align=ContrastiveHead",
            "--data.columns={align: label}",
            "--model.heads.align.groups=true",
        ],
    )
    return {"tokenizer": tokenizer, "generator": generator, "clip": clip}


def test_the_runs_show_reconstructions_and_drawn_samples_in_wandb(runs, bars):
    found = {}
    for run_dir in (bars / "runs" / "wandb").glob("offline-run-*"):
        found.update({table: run_dir for table in read_run(run_dir)["tables"]})
    assert {"val/pixels/reconstructions", "val/picture/samples"} <= set(found)
    for table, columns in (
        ("val/pixels/reconstructions", ["input", "reconstruction"]),
        ("val/picture/samples", ["real (tokenizer)", "drawn"]),
    ):
        path = next(found[table].glob(f"files/media/table/{table}_*.table.json"))
        shown = json.loads(path.read_text())
        assert shown["columns"] == columns and shown["data"]
        assert all(cell == "Image" for row in shown["data"] for cell in row)  # W&B images, not text
        media = [
            c.path
            for r in records(next(found[table].glob("run-*.wandb")))
            if r.WhichOneof("record_type") == "artifact"
            for c in r.artifact.manifest.contents
        ]
        assert sum(path.endswith(".png") for path in media) >= 2 * len(shown["data"])


def test_generate_writes_the_files_it_says(runs, tmp_path, capsys):
    out = tmp_path / "drawn"
    assert (
        main(["generate", "--ckpt_path", runs["generator"], "--prompt", "a bar down", "--n", "3", "--out", str(out)])
        == 0
    )
    record = [json.loads(line) for line in (out / "generated.jsonl").read_text().splitlines()]
    assert [r["sample"] for r in record] == [0, 1, 2] and {r["prompt"] for r in record} == {"a bar down"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(r["file"] for r in record), "grid.png", "generated.jsonl"]
    )
    for r in record:
        with Image.open(out / r["file"]) as picture:
            assert picture.size == (8, 8) and picture.mode == "L"
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (3 * 10 + 2, 12)  # a row of three, 2 pixels apart
    assert "3 files for 1 prompts" in capsys.readouterr().out
    again = tmp_path / "again"
    main(["generate", "--ckpt_path", runs["generator"], "--prompt", "a bar down", "--n", "3", "--out", str(again)])
    assert all((again / r["file"]).read_bytes() == (out / r["file"]).read_bytes() for r in record)  # seeded


def test_reranking_keeps_each_prompts_best_samples(runs, tmp_path):
    out = tmp_path / "ranked"
    rows = generate(runs["generator"], ["a bar across", "a bar down"], 4, out, rerank=runs["clip"], keep=2)
    assert len(rows) == 4 and [r["rank"] for r in rows] == [0, 1, 0, 1]
    for first, second in (rows[:2], rows[2:]):
        assert first["score"] >= second["score"] and first["prompt"] == second["prompt"]
    assert sorted(p.name for p in out.glob("*_*.png")) == sorted(r["file"] for r in rows)  # the others removed


def test_a_manifest_of_prompts_gets_a_picture_a_row(runs, bars, tmp_path):
    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text(
        "".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(["a bar down", "a flat line"]))
    )
    out = tmp_path / "rows"
    assert main(["generate", "--ckpt_path", runs["generator"], "--rows", str(manifest), "--out", str(out)]) == 0
    record = [json.loads(line) for line in (out / "generated.jsonl").read_text().splitlines()]
    assert [(r["id"], r["file"]) for r in record] == [("p0", "p0_00.png"), ("p1", "p1_00.png")]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "  ", "--n", "2"], "prompt 1 of 1 is empty"),
        (["--prompt", "a bar", "--n", "0"], "--n must be at least 1"),
        (["--prompt", "a bar", "--top_q", "1"], "unrecognized arguments"),
    ],
)
def test_bad_requests_get_one_clear_message(runs, tmp_path, capsys, extra, message):
    code = None
    try:
        code = main(["generate", "--ckpt_path", runs["generator"], "--out", str(tmp_path / "x"), *extra])
    except SystemExit as stop:
        code = stop.code
    assert code == 2 and message in capsys.readouterr().err


def test_a_run_without_a_generation_head_is_named(runs, tmp_path, capsys):
    code = main(["generate", "--ckpt_path", runs["tokenizer"], "--prompt", "a bar", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "has no generation head" in err and "ReconstructionHead" in err


def test_a_prompt_longer_than_the_text_encoder_reads_is_cut_with_a_warning(runs, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        generate(runs["generator"], ["a bar down " * 6], 1, tmp_path / "long")
    assert "longer than the text encoder reads" in caplog.text
    assert (tmp_path / "long" / "0_00.png").is_file()


def test_predict_and_serve_draw_through_the_one_forward(runs, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "text": "a bar across"}) + "\n")
    found = tmp_path / "predictions.jsonl"
    run = runs["generator"]
    command = ["predict", "--config", f"{run}/config.yaml", "--ckpt_path", f"{run}/checkpoints/last.ckpt"]
    command += ["--data.train=null", "--data.val=null", f"--data.predict={rows}", f"--predictions_path={found}"]
    assert main([*command, "--trainer.logger=false", "--trainer.enable_progress_bar=false"]) == 0
    answer = json.loads(found.read_text().splitlines()[0])
    assert answer["picture"].startswith("data:image/png;base64,")
    with served("--ckpt_path", runs["generator"]) as url:
        got = requests.post(f"{url}/predict", json={"text": "a bar across"})
        assert got.status_code == 200
        png = base64.b64decode(got.json()["picture"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG")
