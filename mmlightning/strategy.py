"""The fine-tuning contract: a `Tuning` strategy acts on named parts of a model (``mmlightning.tuning.base``
re-exports it; the strategies themselves are in ``mmlightning.tuning``).

A part is an encoder key (``text``), ``encoders.KEY``, ``fusion``, ``heads.KEY``, ``encoders`` or ``heads`` (all of
them), the dotted path of any submodule (``encoders.text.model.encoder.layer.5``), or a glob over parameter names
(``encoders.image.model.blocks.6.*``). A strategy may change which parameters train, scale their learning rates,
add losses and act between epochs; several compose in one run, applied in order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from torch import Tensor, nn

from mmlightning.errors import ConfigError

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel

GLOB = set("*?[")


class TuningError(ConfigError):
    """A fine-tuning strategy that cannot work on this model (a part that does not exist, nothing to adapt)."""


class TrainingData(Protocol):
    """What a strategy's ``training_data`` hook may use of the datamodule."""

    paths: dict[str, Any]  # split -> manifest path (or {name: path} for several datasets)

    def mix_training(self, paths: dict[str, str], ratios: dict[str, float]) -> None:
        """Train on several manifests, each batch drawn from one with these probabilities."""


class Tuning(nn.Module):
    """A fine-tuning strategy: acts on ``parts`` of the model (see the module docstring for what a part is).

    Implement what the strategy needs; every hook has a default that does nothing. The model calls them:

    - ``setup(model, trainer)``: under a Trainer, before the model learns from the training data (an earlier run's
      learnt state can be taken over here);
    - ``adapt(model)``: once the model is fitted, before a checkpoint's weights load and before the optimizer is
      built (change structure, ``requires_grad``). It may run more than once: make it idempotent;
    - ``lr_scales(model)`` / ``trains_later(model)``: learning-rate factors per parameter name, and parameters
      frozen now that will train later (they join the optimizer from the start, with their rate);
    - ``training_data(data)``: in ``fit``, before the model learns from the training rows, change which rows train
      (``Continual`` mixes the old run's rows in); ``data`` is the datamodule (:class:`TrainingData`);
    - ``on_fit_start(model, trainer)``, ``on_train_epoch_start(model, epoch)``;
    - ``eval_modules(model)``: modules kept in eval mode while the rest trains (frozen batch-norm statistics);
    - ``transform_features(model, encoded)``: the encoders' features before the fusion (modality dropout);
    - ``transform_outputs(model, batch, encoded, outputs)``: the heads' outputs, with the encoders' features as they
      came (auxiliary per-modality heads);
    - ``losses(model, batch, outputs, total)``: extra training losses, ``{name: scalar}``, added to the total;
    - ``merge(model)``: fold what the strategy added into plain weights (before export);
    - ``describe(model)``: one line on what it did, logged at fit start.

    Parameters a strategy adds (LoRA adapters, prompt tokens) live in the model or in the strategy itself (it is
    a module of the model), so checkpoints save them and the optimizer trains them.
    """

    keeps_weights: ClassVar[bool] = False  # True for a strategy that only freezes (its frozen encoders may be cached)
    merges: ClassVar[bool] = False  # True where ``merge`` folds what the strategy added into plain weights

    def __init__(self, parts: Sequence[str] | str = ()) -> None:
        super().__init__()
        self.parts = [parts] if isinstance(parts, str) else list(parts)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def setup(self, model: MultimodalModel, trainer: Any) -> None:
        return None

    def training_data(self, data: TrainingData) -> None:
        return None

    def adapt(self, model: MultimodalModel) -> None:
        return None

    def lr_scales(self, model: MultimodalModel) -> dict[str, float]:
        return {}

    def trains_later(self, model: MultimodalModel) -> list[str]:
        return []

    def on_fit_start(self, model: MultimodalModel, trainer: Any) -> None:
        return None

    def on_train_epoch_start(self, model: MultimodalModel, epoch: int) -> None:
        return None

    def eval_modules(self, model: MultimodalModel) -> list[nn.Module]:
        return []

    def losses(self, model: MultimodalModel, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
        return {}

    def transform_features(self, model: MultimodalModel, encoded: dict[str, Any]) -> dict[str, Any]:
        return encoded

    def transform_outputs(
        self, model: MultimodalModel, batch: Any, encoded: dict[str, Any], outputs: dict[str, Any]
    ) -> dict[str, Any]:
        return outputs

    def merge(self, model: MultimodalModel) -> None:
        return None

    def describe(self, model: MultimodalModel) -> str:
        return f"{self.kind} on {', '.join(self.parts) or 'nothing'}"

    def frozen_whole(self, model: MultimodalModel) -> list[str]:
        """The encoder keys this strategy keeps frozen whole (their features may be cached). Default: none."""
        return []

    def touches(self, model: MultimodalModel) -> set[str]:
        """The top-level parts (``encoders.KEY``, ``fusion``, ``heads.KEY``) this strategy acts on."""
        return {top_part(name) for part in self.parts for name in select(model, part, self.kind)}


def top_parts(model: MultimodalModel) -> list[str]:
    """``encoders.KEY`` per encoder, ``fusion``, ``heads.KEY`` per head."""
    return [f"encoders.{k}" for k in model.encoders] + ["fusion"] + [f"heads.{k}" for k in model.heads]


def top_part(name: str) -> str:
    """The top-level part a parameter name belongs to."""
    bits = name.split(".")
    return bits[0] if bits[0] == "fusion" else ".".join(bits[:2])


def canonical(model: MultimodalModel, part: str) -> str:
    """A part's full name: an encoder key (``text``) or a path that starts with one (``image.model.blocks.0``)
    is under ``encoders``."""
    return f"encoders.{part}" if part.split(".")[0] in model.encoders else part


def part_module(model: MultimodalModel, part: str) -> nn.Module | None:
    """The submodule a part names (None for a glob)."""
    part = canonical(model, part)
    if GLOB & set(part):
        return None
    try:
        found: nn.Module = model.get_submodule(part)
        return found
    except AttributeError:
        return None


def select(model: MultimodalModel, part: str, who: str = "tuning") -> dict[str, nn.Parameter]:
    """The parameters (by full name) a part names; a clear error with the parts there are when it names none."""
    part = canonical(model, part)
    named = {n: p for n, p in model.named_parameters() if not n.startswith("tuning.")}
    if GLOB & set(part):
        found = {n: p for n, p in named.items() if fnmatch.fnmatchcase(n, part)}
    elif part_module(model, part) is not None:
        found = {n: p for n, p in named.items() if n == part or n.startswith(part + ".")}
        if not found and part_module(model, part) is not None:
            raise TuningError(f"{who}: part '{part}' has no parameters")
    else:
        found = {}
    if not found:
        raise TuningError(
            f"{who}: part '{part}' matches nothing in this model; its parts are {', '.join(top_parts(model))} "
            "(an encoder key alone works too), any submodule's dotted path, or a glob over parameter names such as "
            f"'{top_parts(model)[0]}.*' (list them: [n for n, _ in model.named_parameters()])"
        )
    return found


def selected(model: MultimodalModel, parts: Sequence[str], who: str) -> dict[str, nn.Parameter]:
    found: dict[str, nn.Parameter] = {}
    for part in parts:
        found.update(select(model, part, who))
    return found


def modules_in(model: MultimodalModel, parts: Sequence[str], who: str) -> dict[str, nn.Module]:
    """The submodules the parts name (a glob names the modules holding the matched parameters)."""
    out: dict[str, nn.Module] = {}
    for part in parts:
        module = part_module(model, part)
        if module is not None:
            select(model, part, who)  # the same error when it holds nothing
            out[canonical(model, part)] = module
        else:
            for name in select(model, part, who):
                owner = name.rsplit(".", 1)[0]
                out[owner] = model.get_submodule(owner)
    return out
