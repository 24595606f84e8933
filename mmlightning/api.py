"""Train, evaluate and predict in a few lines, without YAML: ``mmlightning.fit(...)`` builds the config and runs it
as ``mmlightning fit`` would (:func:`mmlightning.training.fit`: same checks, run folder, saved config and
processors, W&B run), and the :class:`Run` it returns predicts on rows, a DataFrame or a manifest with the saved
model and processors.

    run = mmlightning.fit(train="train.jsonl", val="val.jsonl", encoders={"text": "TextEncoder", "image": "TimmEncoder"},
                          fusion="CrossAttentionFusion", heads={"label": "ClassificationHead"}, max_epochs=5)
    run.metrics["val/label/acc"]
    run.predict([{"text": "a red circle", "image": "pics/1.png"}], root="data")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmlightning.deploy.runtime import Exported
    from mmlightning.trained import TrainedRun

Component = str | Mapping[str, Any]  # a class name, or {"class_path": ..., "init_args": {...}}


def _component(spec: Component) -> Any:
    return {"class_path": spec} if isinstance(spec, str) else dict(spec)


def fit(
    train: str | Mapping[str, str],
    encoders: Mapping[str, Component],
    heads: Mapping[str, Component],
    fusion: Component = "ConcatFusion",
    val: str | Mapping[str, str] | None = None,
    max_epochs: int = 5,
    seed: int = 0,
    model: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
) -> Run:
    """Train a model as ``mmlightning fit`` does; ``model``/``data``/``trainer`` take any other setting of the CLI's
    config (``{"freeze": ["image"]}``, ``{"batch_size": 16}``, ``{"logger": False}``). Errors raise as they are."""
    config = {
        "seed_everything": seed,
        "trainer": {"max_epochs": max_epochs, **dict(trainer or {})},
        "model": {
            "encoders": {k: _component(v) for k, v in encoders.items()},
            "fusion": _component(fusion),
            "heads": {k: _component(v) for k, v in heads.items()},
            **dict(model or {}),
        },
        "data": {"train": train, "val": val, **dict(data or {})},
    }
    from mmlightning.training import fit as fit_config

    found = fit_config(config)
    return Run(Path(found.pop("run_dir")), found.pop("checkpoint"), {k: v for k, v in found.items() if k != "epochs"})


@dataclass
class Run:
    """A finished ``fit``: its folder, its checkpoint, its final metrics."""

    folder: Path
    checkpoint: str
    metrics: dict[str, float] = field(default_factory=dict)
    _trained: TrainedRun | None = field(default=None, repr=False, compare=False)

    def load(self) -> TrainedRun:
        """The trained model with its processors (loaded once, then kept)."""
        if self._trained is None:
            from mmlightning.trained import load_run

            self._trained = load_run(self.checkpoint)
        return self._trained

    def predict(self, rows: Any, root: str | Path = ".", batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for rows (dicts), a pandas DataFrame or a manifest path, in order; media relative to ``root``
        (a manifest's own folder when a path is given). Each row: its id (or position), each head's prediction and,
        for a classification head, each label's probability."""
        return self.load().predict(rows, root, batch_size)

    def predict_proba(self, rows: Any, root: str | Path = ".", batch_size: int = 64) -> list[dict[str, Any]]:
        """Per row, each classification head's probabilities: ``{head: {label: probability}}``."""
        return self.load().predict_proba(rows, root, batch_size)


def load(path: str | Path) -> TrainedRun | Exported:
    """A trained model from ``path``: a checkpoint or a run folder (a :class:`~mmlightning.trained.TrainedRun`), or
    an export folder (a :class:`~mmlightning.deploy.runtime.Exported`). Both give ``predict(rows, root)`` and
    ``bundle``; a run also ``predict_proba`` and ``model`` (the :class:`~mmlightning.model.MultimodalModel`)."""
    if Path(path).is_dir() and (Path(path) / "export.json").is_file():
        from mmlightning.deploy.runtime import Exported

        return Exported.load(path)
    from mmlightning.trained import load_run

    return load_run(path)
