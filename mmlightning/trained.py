"""A trained run, loaded: the one code that knows a run folder's layout.

    RUN/config.yaml              the config ``mmlightning fit`` ran with (saved by LightningCLI)
    RUN/bundle.json              the data side (:class:`~mmlightning.bundle.ProcessorBundle`)
    RUN/checkpoints/NAME.ckpt    weights, learnt state and the bundle again (``last.ckpt`` is the newest)

``load_run(path)`` takes a checkpoint or a run folder and gives a :class:`TrainedRun`: the
:class:`~mmlightning.model.MultimodalModel` (eval mode, CPU), its bundle and its config, ready to predict on raw
rows. Checkpoints load with ``weights_only=True``: tensors and plain values only, so a file carrying code never
runs it. Everything that needs a trained model (the Python API, export, serve, ensembles, robustness, pruning,
``InitFrom``, ``Continual``, ``Distillation``) asks this module.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmlightning.bundle import FILENAME as BUNDLE_FILE
from mmlightning.bundle import ProcessorBundle, to_device
from mmlightning.contracts import Batch, HeadOutput
from mmlightning.errors import ConfigError, MissingFileError, MMLightningError
from mmlightning.model import MultimodalModel, model_state

CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"


class CheckpointError(MMLightningError):
    """A checkpoint that cannot be read safely, or was not written by ``mmlightning fit``."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's content, read with ``weights_only=True`` (tensors and plain values; nothing runs)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No checkpoint at {path}: give RUN/checkpoints/NAME.ckpt or the run folder RUN")
    with path.open("rb") as handle:
        start = handle.read(4)
    if not start.startswith((b"PK\x03\x04", b"\x80")):  # a PyTorch zip file, or the legacy pickle format
        raise CheckpointError(
            f"{path} is not a checkpoint: it is not a PyTorch file at all (it starts {start!r}); give "
            "RUN/checkpoints/NAME.ckpt from `mmlightning fit`"
        )
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        carried = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(err))
        what = f"it carries {carried.group(1)}" if carried else "a type outside the allowed ones"
        raise CheckpointError(
            f"{path} holds more than tensors and plain values ({what}), so it was not loaded and nothing in it ran. "
            "`mmlightning fit` never writes such a file: use a checkpoint from a run you trust."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        reason = str(err).split(". ")[0][:120]
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason}): was it cut short?") from None
    if not isinstance(found, dict) or "state_dict" not in found:
        raise CheckpointError(f"{path} is not a checkpoint of `mmlightning fit` (no state_dict in it)")
    return found


def run_folder(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint belongs to (``RUN`` for ``RUN/checkpoints/NAME.ckpt``)."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == CHECKPOINTS else path.parent


def find_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a file; for a run folder, its ``last.ckpt`` (else its newest checkpoint)."""
    path = Path(path)
    if path.is_file():
        return path
    folder = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    found = sorted(folder.glob("*.ckpt"), key=lambda p: (p.name == "last.ckpt", p.stat().st_mtime))
    if not found:
        raise MissingFileError(f"No checkpoint in {path}: give RUN/checkpoints/NAME.ckpt or a run folder with one")
    return found[-1]


def run_config(checkpoint: str | Path) -> dict[str, Any]:
    """The config saved beside a checkpoint's run (``{}`` when there is none)."""
    import yaml

    path = run_folder(checkpoint) / CONFIG_FILE
    return dict(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


MODEL_ARGS = ("encoders", "fusion", "heads", "loss_weights", "tuning")


def build_model(saved: Mapping[str, Any], where: str | Path) -> MultimodalModel:
    """The model a checkpoint describes (from the config it saved), with its learnt state and weights."""
    from jsonargparse import ArgumentParser

    from mmlightning.plugins import get_registry

    get_registry().import_all()  # the components the config names, and the earlier paths of renamed ones
    params = dict(saved.get("hyper_parameters") or {})
    if not isinstance(params.get("encoders"), dict) or not params["encoders"]:
        raise CheckpointError(
            f"{where} does not record its model's config (it was trained from Python objects, not a config): "
            "load it with MultimodalModule.load_from_checkpoint(path, encoders=..., fusion=..., heads=...)"
        )
    config = {k: params[k] for k in MODEL_ARGS if params.get(k) is not None}
    if params.get("freeze"):  # the training module's shorthand for a Freeze strategy, applied first
        parts = [f"encoders.{key}" for key in sorted(params["freeze"])]
        freeze = {"class_path": "mmlightning.tuning.Freeze", "init_args": {"parts": parts}}
        config["tuning"] = [freeze, *(config.get("tuning") or [])]
    if params.get("modality_dropout"):  # its shorthand for ModalityDropout, applied last (no effect in predict)
        dropout = {
            "class_path": "mmlightning.tuning.ModalityDropout",
            "init_args": {"rates": params["modality_dropout"]},
        }
        config["tuning"] = [*(config.get("tuning") or []), dropout]
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(MultimodalModel, "model", fail_untyped=False)
    model: MultimodalModel = parser.instantiate_classes(parser.parse_object({"model": config})).model
    model.load_fitted(saved.get("mmlightning", {}).get("fitted", {}))
    model.load_state_dict(model_state(saved["state_dict"]))
    return model.eval()


@dataclass
class TrainedRun:
    """A trained model with its data side: ``predict(rows)``, ``predict_proba(rows)``, ``run(batch)``."""

    model: MultimodalModel
    bundle: ProcessorBundle
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None

    @property
    def folder(self) -> Path | None:
        return run_folder(self.checkpoint) if self.checkpoint is not None else None

    def run(self, batch: Batch) -> dict[str, HeadOutput]:
        with torch.no_grad():
            return self.model(to_device(batch, self.model.device))  # type: ignore[no-any-return]

    def batches(
        self, rows: Sequence[Mapping[str, Any]], root: str | Path = ".", batch_size: int = 64
    ) -> Iterator[tuple[Batch, dict[str, HeadOutput]]]:
        """Each batch of ``rows`` (processed by the bundle) with the model's outputs on it, in order."""
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            batch = self.bundle(part, root)
            batch.ids = [str(r.get(self.bundle.id_column, start + i)) for i, r in enumerate(part)]
            yield batch, self.run(Batch(inputs=batch.inputs))  # the inputs alone, as an export sees them

    def predict(self, rows: Any, root: str | Path = ".", batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for rows (dicts), a pandas DataFrame or a manifest path, in order: each row's id (or
        position), each head's prediction and, for a classification head, each label's probability."""
        if isinstance(rows, (str, Path)):
            rows, root = self.checked_rows(rows)
        rows, root = as_rows(rows, root)
        out: list[dict[str, Any]] = []
        for batch, outputs in self.batches(rows, root, batch_size):
            out += self.bundle.decode(outputs, batch.ids)
        return out

    def checked_rows(self, path: str | Path) -> tuple[list[dict[str, Any]], Path]:
        """A manifest's rows, each checked as training checks them: a bad row stops it, named by file and line."""
        from mmlightning.data.manifest import read_manifest
        from mmlightning.data.validate import BadRowsError, check_columns, check_rows, report
        from mmlightning.processing import MediaRoot

        manifest = read_manifest(path)
        root = MediaRoot.make(manifest.root)
        check_columns(manifest, self.bundle.read_columns(targets=False, drawn=False))
        good, bad = check_rows(manifest, lambda row: self.bundle.check(row.values, root, targets=[]))
        if bad:
            raise BadRowsError(
                f"{report(bad, len(manifest.rows) + len(manifest.bad))}\nFix these rows and predict again."
            )
        return [row.values for row in good], manifest.root

    def predict_proba(self, rows: Any, root: str | Path = ".", batch_size: int = 64) -> list[dict[str, Any]]:
        """Per row, each classification head's probabilities: ``{head: {label: probability}}``."""
        found = []
        for row in self.predict(rows, root, batch_size):
            found.append({k[: -len("_scores")]: v for k, v in row.items() if k.endswith("_scores")})
        return found

    def manifest(self, splits: Sequence[str] = ("val", "test", "train")) -> str | None:
        """The first of ``splits`` the run's config names as one manifest (for checks on real rows)."""
        data = self.config.get("data") or {}
        return next((data[k] for k in splits if isinstance(data.get(k), str)), None)


def load_run(path: str | Path) -> TrainedRun:
    """A checkpoint, or a run folder (its ``last.ckpt``), as a :class:`TrainedRun`."""
    checkpoint = find_checkpoint(path)
    saved = read_checkpoint(checkpoint)
    model = build_model(saved, checkpoint)
    state = saved.get("mmlightning", {}).get("bundle")
    bundle_file = run_folder(checkpoint) / BUNDLE_FILE
    if state:
        bundle = ProcessorBundle.from_state(state)
    elif bundle_file.is_file():
        bundle = ProcessorBundle.load(bundle_file)
    else:
        raise MissingFileError(f"{checkpoint} has no processors saved with it, and there is no {bundle_file}")
    return TrainedRun(model, bundle, run_config(checkpoint), checkpoint)


def example_rows(trained: TrainedRun, rows: str | None, count: int = 16) -> tuple[list[dict[str, Any]], Path]:
    """Real rows for the parity check: ``rows`` (a manifest; media relative to its folder), or the run's validation
    (else training) manifest, its media under the run's ``data_root`` where it has one."""
    from mmlightning.data.manifest import read_manifest

    data_root = (trained.config.get("data") or {}).get("data_root") if rows is None else None
    rows = rows or trained.manifest()
    if rows is None:
        raise ConfigError("No manifest to check the export on: give --rows MANIFEST (rows like the training data)")
    manifest = read_manifest(rows)
    if not manifest.rows:
        raise ConfigError(f"{rows} has no readable rows to check the export on")
    return [row.values for row in manifest.rows[:count]], Path(data_root or manifest.root)


def check_examples(
    bundle: ProcessorBundle, rows: list[dict[str, Any]], root: Path, manifest: str, whose: str = ""
) -> None:
    """Every row readable by ``bundle`` (its targets checked where present), or a ``ConfigError`` naming the row."""
    for i, row in enumerate(rows):
        targets = [k for k in bundle.targets if row.get(bundle.target_column(k)) is not None]
        problems = bundle.check(row, Path(root), targets=targets)
        if problems:
            raise ConfigError(f"{manifest}, row {i + 1}: {'; '.join(problems)}{whose}; fix it or leave it out")


def as_rows(rows: Any, root: str | Path) -> tuple[list[dict[str, Any]], str | Path]:
    """Rows as dicts, from dicts, a pandas DataFrame or a manifest path (whose folder becomes the root)."""
    if isinstance(rows, (str, Path)):
        from mmlightning.data.manifest import read_manifest

        manifest = read_manifest(rows)
        return [row.values for row in manifest.rows], manifest.root
    if hasattr(rows, "to_dict"):  # a pandas DataFrame
        return list(rows.to_dict("records")), root
    if isinstance(rows, Mapping):
        return [dict(rows)], root
    if not isinstance(rows, Sequence):
        raise ConfigError(f"rows must be dicts, a DataFrame or a manifest path, got {type(rows).__name__}")
    return [dict(r) for r in rows], root


def pick_head(run: TrainedRun, found: list[str], head: str | None, kind: tuple[str, str], needed: str) -> str:
    """Of the heads ``found`` able to do a job: ``head``, or the only one. ``kind``: what a head that cannot does
    not do, and the name of one that can; ``needed``: what the job needs, said when the run has none."""
    cannot, name = kind
    if head is not None:
        if head not in found:
            raise ConfigError(
                f"head '{head}' of {run.checkpoint} {cannot}; heads that do: {', '.join(found) or 'none'}"
            )
        return head
    if not found:
        kinds = ", ".join(f"{k} ({type(h).__name__})" for k, h in run.model.heads.items())
        raise ConfigError(f"{run.checkpoint} has no {name} (its heads: {kinds}): {needed}")
    if len(found) > 1:
        raise ConfigError(f"{run.checkpoint} has several {name}s ({', '.join(found)}): give --head")
    return found[0]
