"""Starting from an earlier run: `InitFrom` (pretrain, then fine-tune with other heads) and `Continual`
(fine-tune a trained model on new data, new labels included, optionally rehearsing the old data)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from mmlightning.errors import MissingFileError
from mmlightning.strategy import TrainingData
from mmlightning.tuning.base import Tuning, TuningError, canonical, part_module, select, top_part, top_parts

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel

log = logging.getLogger(__name__)


class InitFrom(Tuning):
    """Initialise parts of a new model from an earlier mmlightning checkpoint (``checkpoint``).

    ``parts`` (default ``[encoders, fusion]``): what to take; the rest (new heads) starts fresh. The earlier
    run's learnt data state of those parts comes too (a from-scratch text encoder's vocabulary), so token ids keep
    their meaning. At fit start it logs which tensors loaded, which are new in this model, and which did not match
    in shape (those stay fresh); the report is also kept as ``self.loaded``. A resumed run loads its own
    checkpoint instead.
    """

    def __init__(self, checkpoint: str, parts: Sequence[str] | str = ("encoders", "fusion")) -> None:
        super().__init__(parts)
        self.checkpoint = checkpoint
        self.loaded: dict[str, list[str]] = {}

    def _read(self) -> dict[str, Any]:
        if "_ckpt" not in self.__dict__:
            if not Path(self.checkpoint).is_file():
                raise MissingFileError(
                    f"{self.kind}: no checkpoint at {self.checkpoint}; give a checkpoint `mmlightning fit` wrote "
                    "(RUN/checkpoints/NAME.ckpt)"
                )
            from mmlightning.model import model_state
            from mmlightning.trained import read_checkpoint

            saved = read_checkpoint(self.checkpoint)  # its tensors named as in the model (encoders.KEY...)
            self.__dict__["_ckpt"] = {**saved, "state_dict": model_state(saved["state_dict"])}
        return self.__dict__["_ckpt"]

    def touches(self, model: MultimodalModel) -> set[str]:
        return set()  # it sets weights once, before training: a frozen encoder's cache is keyed on its weights

    def _wanted(self, model: MultimodalModel) -> set[str]:
        """The top-level parts taken from the checkpoint."""
        out: set[str] = set()
        for part in self.parts:
            name = canonical(model, part)
            if part_module(model, name) is not None:  # a module, with or without weights yet (a head before fitting)
                out |= {
                    p for p in top_parts(model) if p == name or p.startswith(name + ".") or name.startswith(p + ".")
                }
            else:
                out |= {top_part(n) for n in select(model, part, self.kind)}
        return out

    def setup(self, model: MultimodalModel, trainer: Any) -> None:
        fitted = self._read().get("mmlightning", {}).get("fitted", {})
        wanted = self._wanted(model)
        model.earlier = {name: state for name, state in fitted.items() if name in wanted}

    def on_fit_start(self, model: MultimodalModel, trainer: Any) -> None:
        if getattr(trainer, "ckpt_path", None):
            log.info("%s: resuming from %s, so %s is not loaded again", self.kind, trainer.ckpt_path, self.checkpoint)
            return
        self.loaded = self.load(model)
        r = self.loaded
        log.info(
            "%s %s: %d tensors loaded, %d new in this model, %d grown, %d not matching in shape%s",
            self.kind,
            self.checkpoint,
            len(r["loaded"]),
            len(r["new"]),
            len(r["grown"]),
            len(r["mismatched"]),
            "".join(
                f"\n  {key}: {', '.join(r[key][:8])}{' ...' if len(r[key]) > 8 else ''}"
                for key in ("new", "grown", "mismatched")
                if r[key]
            ),
        )

    def load(self, model: MultimodalModel) -> dict[str, list[str]]:
        """Copy the checkpoint's tensors into the chosen parts; returns the names loaded, new, grown, mismatched."""
        saved = self._read()["state_dict"]
        wanted = self._wanted(model)
        report: dict[str, list[str]] = {"loaded": [], "new": [], "grown": [], "mismatched": []}
        with torch.no_grad():
            for name, tensor in model.state_dict(keep_vars=True).items():
                if name.startswith("tuning.") or top_part(name) not in wanted or "lora_" in name:
                    continue
                source = saved.get(name, saved.get(name.replace(".base_layer.", ".")))
                if source is None:
                    report["new"].append(name)
                elif source.shape == tensor.shape:
                    tensor.copy_(source)
                    report["loaded"].append(name)
                elif self.grows(name) and _prefix_fits(source, tensor):
                    tensor[: source.shape[0]].copy_(source)
                    report["grown"].append(name)
                else:
                    report["mismatched"].append(f"{name} {tuple(source.shape)} -> {tuple(tensor.shape)}")
        if not report["loaded"]:
            raise TuningError(
                f"{self.kind}: nothing in {self.checkpoint} matches the parts {sorted(wanted)} of this model (its "
                f"tensors are named like {next(iter(saved), 'nothing')}); are the encoder keys the same?"
            )
        return report

    def grows(self, name: str) -> bool:
        """Whether a tensor may have grown along its first dimension (a head whose label set grew)."""
        return False

    def describe(self, model: MultimodalModel) -> str:
        return f"{self.kind} from {self.checkpoint}: {', '.join(sorted(self._wanted(model)))}"


class Continual(InitFrom):
    """Fine-tune a trained model on new data: every part starts from ``checkpoint``; a classification head whose
    new data brings new labels grows (the old labels keep their ids and their weights, the new ones start fresh).

    ``rehearsal``: the share of training batches drawn from the old run's training manifest (read from the
    ``config.yaml`` beside the checkpoint's folder), mixed with the new data, so the old task is not forgotten.
    """

    def __init__(
        self, checkpoint: str, rehearsal: float = 0.0, parts: Sequence[str] | str = ("encoders", "fusion", "heads")
    ):
        super().__init__(checkpoint, parts)
        if not 0.0 <= rehearsal < 1.0:
            raise TuningError(f"Continual: rehearsal must be in [0, 1), got {rehearsal}")
        self.rehearsal = rehearsal

    def grows(self, name: str) -> bool:
        return name.startswith("heads.")

    def training_data(self, data: TrainingData) -> None:
        if self.rehearsal > 0:
            old = self.old_manifest()
            new = data.paths["train"]
            if not isinstance(new, str):
                raise TuningError("Continual: rehearsal needs one new training manifest (--data.train=PATH)")
            data.mix_training({"new": new, "old": str(old)}, {"new": 1 - self.rehearsal, "old": self.rehearsal})
            log.info("Continual: %.0f%% of training batches rehearse %s", 100 * self.rehearsal, old)

    def old_manifest(self) -> Path:
        from mmlightning.trained import run_folder

        config = run_folder(self.checkpoint) / "config.yaml"
        if not config.is_file():
            raise MissingFileError(
                f"Continual: rehearsal reads the old run's config.yaml, not found at {config}; give the checkpoint "
                "inside its run folder (RUN/checkpoints/NAME.ckpt), or rehearsal: 0"
            )
        train = (yaml.safe_load(config.read_text()).get("data") or {}).get("train")
        if not isinstance(train, str) or not Path(train).is_file():
            raise MissingFileError(
                f"Continual: the old run's training manifest ({train!r}, from {config}) is not there; rehearsal needs "
                "it (paths are relative to the folder you run from)"
            )
        return Path(train)


def _prefix_fits(source: torch.Tensor, tensor: torch.Tensor) -> bool:
    return source.ndim == tensor.ndim and source.shape[1:] == tensor.shape[1:] and source.shape[0] <= tensor.shape[0]
