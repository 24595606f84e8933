"""`Distillation`: the student's loss adds a temperature-scaled KL divergence to a trained teacher's head outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlightning.errors import MissingFileError
from mmlightning.tuning.base import Tuning, TuningError

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class Distillation(Tuning):
    """Knowledge distillation from a teacher: an mmlightning checkpoint (``teacher: RUN/checkpoints/x.ckpt``; its
    config is inside it).

    For each head with logits (``weights``: head -> weight, default 1 for every head the two models share), the
    training loss adds ``weight * T^2 * KL(teacher || student)`` over the outputs softened by ``temperature`` T
    (Hinton et al., 2015). The heads must predict the same classes in the same order. The teacher reads the
    student's batch when its processors are the same, and otherwise makes its own batch from the same raw rows
    (a bigger teacher with another tokenizer). It never trains and is not saved in the student's checkpoints.
    """

    def __init__(self, teacher: str, weights: dict[str, float] | None = None, temperature: float = 2.0) -> None:
        super().__init__([])
        if temperature <= 0:
            raise TuningError(f"Distillation: temperature must be > 0, got {temperature}")
        self.teacher_path, self.weights, self.temperature = teacher, weights, temperature

    def teacher(self, model: MultimodalModel) -> Any:
        loaded = self.__dict__.get("_teacher")  # not a submodule: neither trained nor saved with the student
        if loaded is None:
            from mmlightning.trained import load_run

            if not Path(self.teacher_path).is_file():
                raise MissingFileError(
                    f"Distillation: no teacher checkpoint at {self.teacher_path}; give the path of a checkpoint "
                    "`mmlightning fit` wrote (RUN/checkpoints/NAME.ckpt)"
                )
            run = load_run(self.teacher_path)
            loaded, bundle = run.model, run.bundle
            loaded.requires_grad_(False)
            self.__dict__["_teacher"], self.__dict__["_bundle"] = loaded, bundle
            self._check(model, loaded)
            self.__dict__["_same_inputs"] = _same_processors(model, loaded)
        return loaded

    def _check(self, model: MultimodalModel, teacher: Any) -> None:
        heads = self._weights(model)
        missing = sorted(set(heads) - set(teacher.heads))
        if missing:
            raise TuningError(
                f"Distillation: the teacher {self.teacher_path} has no head {missing}; its heads are "
                f"{sorted(teacher.heads)}. Name the heads to distil with weights: {{HEAD: 1.0}}"
            )
        for key in heads:
            mine, theirs = model.heads[key].fitted, teacher.heads[key].fitted
            if mine != theirs:
                raise TuningError(
                    f"Distillation: head '{key}' of the teacher learnt {_short(theirs)} but the student's learnt "
                    f"{_short(mine)}; distillation needs the same outputs (the same classes, in the same order)"
                )

    def _weights(self, model: MultimodalModel) -> dict[str, float]:
        if self.weights is None:
            return dict.fromkeys(model.heads, 1.0)
        unknown = sorted(set(self.weights) - set(model.heads))
        if unknown:
            raise TuningError(f"Distillation: weights name {unknown}, not heads; the heads are {sorted(model.heads)}")
        return dict(self.weights)

    def on_fit_start(self, model: MultimodalModel, trainer: Any) -> None:
        self.teacher(model).to(model.device)

    def losses(self, model: MultimodalModel, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
        teacher = self.teacher(model).eval()
        if not self.__dict__["_same_inputs"]:
            rows = [{c: values[i] for c, values in batch.raw.items()} for i in range(len(batch))]
            from mmlightning.bundle import to_device

            theirs = to_device(self.__dict__["_bundle"](rows, batch.root), model.device)
        else:
            theirs = batch
        with torch.no_grad():
            taught = teacher(theirs)
        out, t = {}, self.temperature
        for key, weight in self._weights(model).items():
            student, target = outputs[key].logits, taught[key].logits
            if student is None or target is None:
                raise TuningError(f"Distillation: head '{key}' gives no logits to distil; leave it out of weights")
            out[f"{key}/kl"] = weight * soft_kl(student, target, t)
        return out

    def describe(self, model: MultimodalModel) -> str:
        return (
            f"Distillation from {self.teacher_path} at temperature {self.temperature}, weights {self._weights(model)}"
        )


def soft_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` over the last dimension, averaged over the rest."""
    t = temperature
    kl = F.kl_div((student / t).log_softmax(-1), (teacher / t).log_softmax(-1), log_target=True, reduction="none")
    return t * t * kl.sum(-1).mean()


def _same_processors(model: MultimodalModel, teacher: Any) -> bool:
    if set(model.encoders) != set(teacher.encoders):
        return False
    return all(model.encoders[k].processor().state() == teacher.encoders[k].processor().state() for k in model.encoders)


def _short(state: Any) -> str:
    text = str(state)
    return text if len(text) < 120 else text[:117] + "..."
