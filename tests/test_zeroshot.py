"""Zero-shot classification (`mmlightning zeroshot`, `mmlightning.evaluate.zeroshot`): the labels' prompts through one
tower of a contrastive head, the rows through the other, the nearest label wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mmlightning import Encoder, Features, MultimodalModel, TrainedRun
from mmlightning.cli.main import main
from mmlightning.errors import ConfigError
from mmlightning.evaluate.zeroshot import zeroshot
from mmlightning.processing import Processor
from mmlightning_fusions import ConcatFusion
from mmlightning_heads import ClassificationHead, ContrastiveHead

from conftest import fit_shapes, write_rows

WORDS = ["red", "green", "blue"]


class WordsProcessor(Processor):
    """A text -> which of ``WORDS`` it holds, as a vector of counts."""

    def __init__(self, words: list[str]) -> None:
        self.words = words

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, torch.Tensor]:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        found = value.lower().replace(".", " ").split()
        return {"counts": torch.tensor([float(found.count(w)) for w in self.words])}

    def blank(self) -> dict[str, torch.Tensor]:
        return {"counts": torch.zeros(len(self.words))}


class WordsEncoder(Encoder):
    """Pooled features = the word counts: two of them embed a caption and a colour name the same way."""

    modality = "text"

    def __init__(self) -> None:
        super().__init__()
        self.dim = len(WORDS)
        self.set_fitted({})

    def processor(self) -> WordsProcessor:
        return WordsProcessor(WORDS)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        return Features.from_pooled(inputs["counts"], inputs.get("present"))


def colour_run(head: str = "align") -> TrainedRun:
    heads = {"align": lambda dim: ContrastiveHead(dim, embed_dim=len(WORDS))}
    if head == "label":
        heads = {"label": lambda dim: ClassificationHead(dim, labels=WORDS)}
    model = MultimodalModel(
        {"caption": WordsEncoder(), "colour": WordsEncoder()}, lambda dims: ConcatFusion(dims, dim=4), heads
    )
    model.fit_data({})
    if head == "align":
        for layer in model.heads["align"].project.values():  # both towers embed the counts as they are
            layer.weight.data.copy_(torch.eye(len(WORDS)))
            layer.bias.data.zero_()
    return TrainedRun(model.eval(), model.bundle())


def test_each_row_gets_the_label_whose_prompts_match_it():
    rows = [{"id": f"r{i}", "colour": c} for i, c in enumerate(["blue", "red", "green", "red"])]
    found = zeroshot(colour_run(), ["red", "green", "blue"], rows, ["a {} thing.", "the colour {}"])
    assert [r["label"] for r in found] == ["blue", "red", "green", "red"]
    assert [r["id"] for r in found] == ["r0", "r1", "r2", "r3"]
    assert set(found[0]) == {"id", "label", "label_scores"}  # the ordinary predictions format
    assert sum(found[0]["label_scores"].values()) == pytest.approx(1.0)
    assert found[0]["label_scores"]["blue"] > 0.9  # the learnt scale (1 / 0.07) makes the match confident


def test_the_rows_choose_the_tower_unless_told():
    both = [{"caption": "a red thing", "colour": "red"}]
    with pytest.raises(ConfigError, match="have columns for both caption .* give --prompt_modality"):
        zeroshot(colour_run(), ["red", "blue"], both)
    found = zeroshot(
        colour_run(), ["red", "blue"], [{"caption": "blue sky", "colour": "red"}], prompt_modality="colour"
    )
    assert found[0]["label"] == "blue"  # the caption was classified, the labels went to the colour tower
    with pytest.raises(ConfigError, match="must be one of the head's modalities"):
        zeroshot(colour_run(), ["red", "blue"], both, prompt_modality="image")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["red"], "zero-shot picks among at least 2"),
        (["red", "Red "], "names 'red' and 'Red': each label once"),
        (["red", ""], "an empty label"),
    ],
)
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ConfigError, match=message):
        zeroshot(colour_run(), labels, [{"colour": "red"}])


def test_a_template_without_a_place_for_the_label_is_refused():
    with pytest.raises(ConfigError, match="holds the label once, as"):
        zeroshot(colour_run(), ["red", "blue"], [{"colour": "red"}], ["a photo"])


def test_a_run_without_a_contrastive_head_is_refused():
    with pytest.raises(ConfigError, match="has no contrastive head .*label \\(ClassificationHead\\)"):
        zeroshot(colour_run("label"), ["red", "blue"], [{"colour": "red"}])


def test_a_row_missing_the_classified_modality_is_named():
    with pytest.raises(ConfigError, match="row 1 \\(id 1\\) has no colour"):
        zeroshot(colour_run(), ["red", "blue"], [{"colour": "red"}, {"colour": None, "other": 1}])


def test_the_command_classifies_a_manifest_with_a_trained_contrastive_run(shapes_data, tmp_path, capsys):
    heads = {"align": {"class_path": "ContrastiveHead", "init_args": {"embed_dim": 8}}}
    fitted = fit_shapes(shapes_data, heads=heads, trainer={"logger": False, "default_root_dir": str(tmp_path)})
    out = tmp_path / "zeroshot.jsonl"
    args = ["zeroshot", "--ckpt_path", str(fitted.folder), "--labels", "red,green,blue"]
    args += ["--template", "a {} shape", "--template", "this picture shows a {} circle"]
    args += ["--rows", str(shapes_data / "val.jsonl"), "--prompt_modality", "text", "--predictions_path", str(out)]
    assert main([*args, "--target", "id"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 48 and lines[0]["id"] == "val_00000"
    assert lines[0]["label"] in ("red", "green", "blue") and len(lines[0]["label_scores"]) == 3
    assert "48 rows classified into 3 labels" in capsys.readouterr().out
    assert main(["zeroshot", "--ckpt_path", str(fitted.folder), "--labels", "red", "--rows", str(out)]) == 2
    assert "zero-shot picks among at least 2" in capsys.readouterr().err


def test_the_command_names_rows_that_cannot_be_read(shapes_data, tmp_path, capsys):
    rows = write_rows(tmp_path / "rows.jsonl", [{"image": "a.png"}, "{not json"])
    assert main(["zeroshot", "--ckpt_path", str(tmp_path), "--labels", "a,b", "--rows", str(rows)]) == 2
    assert "rows.jsonl" in capsys.readouterr().err
