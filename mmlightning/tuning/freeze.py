"""Which weights train: `Freeze` (any part) and `GradualUnfreeze` (from the top block down, on a schedule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmlightning.tuning.base import Tuning, TuningError, canonical, modules_in, part_module, select, selected
from mmlightning.tuning.blocks import Stack, find_stack

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class Freeze(Tuning):
    """Keep parts' weights as loaded: no gradients, and their batch-norm statistics frozen too.

    ``parts: [encoders]`` trains only the fusion and heads (a linear probe on frozen encoders); ``[fusion, heads]``
    only the encoders; ``[text]`` one encoder; a glob some layers. A part that is a whole module stays in eval mode
    (no dropout); within a glob, the batch norms whose weights are all frozen do. A whole encoder frozen, whose input
    has no random augmentation, has its features computed once and reused (``cache_frozen``).
    ``--model.freeze=[KEY, ...]`` is short for this strategy on those encoders.
    """

    keeps_weights = True

    def adapt(self, model: MultimodalModel) -> None:
        for param in selected(model, self.parts, self.kind).values():
            param.requires_grad_(False)

    def eval_modules(self, model: MultimodalModel) -> list[nn.Module]:
        out: list[nn.Module] = []
        for part in self.parts:
            module = part_module(model, part)
            if module is not None:
                out.append(module)
            else:
                owners = modules_in(model, [part], self.kind).values()
                out += [m for m in owners if isinstance(m, _BatchNorm)]
        return out

    def frozen_whole(self, model: MultimodalModel) -> list[str]:
        return self.whole_encoders(model)

    def whole_encoders(self, model: MultimodalModel) -> list[str]:
        """The encoder keys this freezes whole."""
        keys = []
        for part in self.parts:
            for key in model.encoders:
                if part in (key, f"encoders.{key}", "encoders"):
                    keys.append(key)
        return keys


class GradualUnfreeze(Tuning):
    """Unfreeze parts from the top block down: all frozen until epoch ``start``, then one more level every
    ``every`` epochs: the top block with what sits above the stack first, then each block below, the embeddings
    last. ``most`` caps how many levels ever unfreeze (``start: 0, every: 1, most: 3``: the top three levels train,
    the top one from the first epoch, the rest stays frozen throughout). ``keep_norm_stats``: every batch norm of
    the parts keeps its running statistics, in unfrozen levels too (with a few rows a batch, fine-tuning from few
    examples, their statistics would drift from the pretrained ones; its weights still train).

    Blocks are found from the part's structure (a transformer's layers, a CNN's stages). Every parameter of the
    part is in the optimizer from the start with its rate (so a ``LayerwiseLRDecay`` on the same part holds, and a
    resumed run matches), and gets gradients only once unfrozen; frozen blocks (and a frozen stem) keep their
    batch-norm statistics.
    """

    def __init__(
        self,
        parts: Sequence[str] | str,
        start: int = 1,
        every: int = 1,
        most: int | None = None,
        keep_norm_stats: bool = False,
    ) -> None:
        super().__init__(parts)
        self.keep_norm_stats = keep_norm_stats
        if start < 0 or every < 1 or (most is not None and most < 1):
            raise TuningError(
                f"GradualUnfreeze: start must be >= 0, every >= 1 and most >= 1 (or unset), got start={start}, "
                f"every={every}, most={most}"
            )
        self.start, self.every, self.most = start, every, most
        self.levels = 0  # unfrozen levels, counting from the top

    def _stacks(self, model: MultimodalModel) -> dict[str, tuple[nn.Module, Stack]]:
        why = "(transformer layers, CNN stages) to unfreeze one by one"
        return {canonical(model, part): stacked(model, part, self.kind, why) for part in self.parts}

    def levels_at(self, epoch: int) -> int:
        levels = 0 if epoch < self.start else (epoch - self.start) // self.every + 1
        return levels if self.most is None else min(levels, self.most)

    def adapt(self, model: MultimodalModel) -> None:
        self._set(model, self.levels)

    def _set(self, model: MultimodalModel, levels: int) -> None:
        self.levels = levels
        for module, stack in self._stacks(model).values():
            top = len(stack) + 1
            for name, param in module.named_parameters():
                param.requires_grad_(max(top - stack.depth(name) - 1, 0) < levels)  # level 0: the top block and above

    def trains_later(self, model: MultimodalModel) -> list[str]:
        return [name for part in self.parts for name in select(model, part, self.kind)]

    def on_train_epoch_start(self, model: MultimodalModel, epoch: int) -> None:
        self._set(model, self.levels_at(epoch))

    def eval_modules(self, model: MultimodalModel) -> list[nn.Module]:
        out: list[nn.Module] = []
        for module, stack in self._stacks(model).values():
            out += [b for b in stack.blocks if not any(p.requires_grad for p in b.parameters())]
            out += [  # batch norms outside the frozen blocks too (a CNN's stem): those frozen, or all kept
                m
                for m in module.modules()
                if isinstance(m, _BatchNorm)
                and (self.keep_norm_stats or not any(p.requires_grad for p in m.parameters()))
            ]
        return out

    def describe(self, model: MultimodalModel) -> str:
        sizes = ", ".join(f"{part} ({len(stack)} blocks)" for part, (_, stack) in self._stacks(model).items())
        return f"GradualUnfreeze on {sizes}: frozen until epoch {self.start}, then a level every {self.every} epoch(s) from the top{f', at most {self.most}' if self.most else ''}; {self.levels} level(s) unfrozen now"


class LayerwiseLRDecay(Tuning):
    """Discriminative learning rates by depth: the top of a part learns at the base rate, each block below at
    ``decay`` times the one above, the embeddings (or stem) lowest.

    ``decay`` is one factor for every part, or one per part (``{text: 0.8, image: 0.6}``). Depth comes from the
    part's stack of blocks (transformer layers, timm stages); other parts keep the base rate.
    """

    def __init__(self, parts: Sequence[str] | str, decay: float | dict[str, float] = 0.8) -> None:
        super().__init__(parts)
        factors = decay if isinstance(decay, dict) else dict.fromkeys(self.parts, decay)
        unknown = sorted(set(factors) - set(self.parts))
        if unknown or any(not 0 < f <= 1 for f in factors.values()):
            raise TuningError(
                f"LayerwiseLRDecay: decay must be in (0, 1], one value or one per part in {self.parts}; got {decay}"
            )
        self.decay = {part: float(factors.get(part, 0.8)) for part in self.parts}

    def lr_scales(self, model: MultimodalModel) -> dict[str, float]:
        scales: dict[str, float] = {}
        for part in self.parts:
            module, stack = stacked(model, part, self.kind, "to find depth from")
            prefix = canonical(model, part)
            top = len(stack) + 1
            for name, _ in module.named_parameters():
                scales[f"{prefix}.{name}"] = self.decay[part] ** (top - stack.depth(name))
        return scales

    def describe(self, model: MultimodalModel) -> str:
        scales = self.lr_scales(model)
        return (
            f"LayerwiseLRDecay on {', '.join(self.parts)}: rate factors {min(scales.values()):.3g} (bottom) to 1 (top)"
        )


def stacked(model: MultimodalModel, part: str, who: str, why: str) -> tuple[nn.Module, Stack]:
    """The module a part names and its stack of blocks; a clear error when it has none."""
    module = part_module(model, part)
    stack = find_stack(module) if module is not None else None
    if module is None or stack is None:
        raise TuningError(
            f"{who}: part '{part}' is not a module with a stack of blocks {why}; name an encoder or another module "
            "that has one"
        )
    return module, stack
