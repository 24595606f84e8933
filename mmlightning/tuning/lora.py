"""`LoRA`: low-rank adapters on a part's linear (and optionally convolution) layers, with ``peft``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from mmlightning.tuning.base import Tuning, TuningError, canonical, part_module, select

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class LoRA(Tuning):
    """Low-rank adapters (``W + B A * alpha / r``) on the linear layers of parts, the parts' own weights frozen.

    Works on any encoder or the fusion (any module with ``nn.Linear`` layers; ``conv=True`` adds ``nn.Conv2d``).
    ``targets``: globs over the layers' names inside the part (``["*query", "*value"]``); default every linear
    layer. The adapters train and are saved in checkpoints; ``mmlightning export`` folds them into plain weights
    first (``merge``), so the exported model is as fast as the original. Needs ``peft``
    (``pip install 'mmlightning[tuning]'``).
    """

    merges = True

    def __init__(
        self,
        parts: Sequence[str] | str,
        rank: int = 8,
        alpha: int = 16,
        dropout: float = 0.0,
        targets: list[str] | None = None,
        conv: bool = False,
    ) -> None:
        super().__init__(parts)
        if rank < 1:
            raise TuningError(f"LoRA: rank must be >= 1, got {rank}")
        self.rank, self.alpha, self.dropout, self.targets, self.conv = rank, alpha, dropout, targets, conv

    def _layers(self, module: nn.Module) -> list[str]:
        import fnmatch

        kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d) if self.conv else (nn.Linear,)
        names = [n for n, m in module.named_modules() if isinstance(m, kinds) and n and "lora_" not in n]
        names = [n for n in names if not n.endswith("base_layer")]
        if self.targets:
            names = [n for n in names if any(fnmatch.fnmatchcase(n, t) for t in self.targets)]
        return names

    def adapt(self, model: MultimodalModel) -> None:
        try:
            from peft import LoraConfig, inject_adapter_in_model
            from peft.tuners.lora import LoraLayer
        except ImportError as err:
            raise TuningError("LoRA needs peft: pip install 'mmlightning[tuning]' (or pip install peft)") from err
        for part in self.parts:
            module = part_module(model, part)
            if module is None:
                select(model, part, self.kind)  # a clear error for a part that does not exist
                raise TuningError(f"LoRA: part '{part}' must be a module (an encoder, the fusion), not a glob")
            if not any(isinstance(m, LoraLayer) for m in module.modules()):
                layers = self._layers(module)
                if not layers:
                    kinds = "linear or convolution" if self.conv else "linear"
                    raise TuningError(
                        f"LoRA: part '{canonical(model, part)}' has no {kinds} layers{' matching ' + str(self.targets) if self.targets else ''} "
                        "to adapt; pick a part with nn.Linear layers (conv=True adds nn.Conv2d)"
                    )
                config = LoraConfig(
                    r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=layers
                )
                inject_adapter_in_model(config, module)
            for name, param in module.named_parameters():
                param.requires_grad_("lora_" in name)

    def merge(self, model: MultimodalModel) -> None:
        from peft.tuners.lora import LoraLayer

        for part in self.parts:
            module = part_module(model, part)
            if module is None:
                continue
            for name, layer in list(module.named_modules()):
                if isinstance(layer, LoraLayer):
                    layer.merge()
                    parent, _, leaf = name.rpartition(".")
                    setattr(module.get_submodule(parent) if parent else module, leaf, layer.get_base_layer())

    def describe(self, model: MultimodalModel) -> str:
        count = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
        return f"LoRA rank {self.rank} (alpha {self.alpha}) on {', '.join(self.parts)}: {count:,} adapter parameters"
