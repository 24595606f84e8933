"""An encoder's stack of blocks (transformer layers, CNN stages), found from its structure, and each parameter's
depth in it: what discriminative learning rates, gradual unfreezing and prompt tuning work on."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Stack:
    """The blocks of a module, bottom (input side) to top: ``path`` is their container's dotted name in it."""

    path: str
    blocks: list[nn.Module]

    def __len__(self) -> int:
        return len(self.blocks)

    def depth(self, name: str) -> int:
        """A parameter's depth (its name relative to the stack's module): 0 below the stack (embeddings, stem),
        ``i + 1`` in block ``i``, ``len + 1`` above it (final norm, projection)."""
        prefix = f"{self.path}." if self.path else ""
        if name.startswith(prefix):
            index = name[len(prefix) :].split(".", 1)[0]
            if index.isdigit():
                return int(index) + 1
        return 0 if _below(name) else len(self) + 1


def _below(name: str) -> bool:
    """Whether a parameter outside the stack is an input-side one (embeddings, stem), by the usual names."""
    return any(
        word in bit for bit in name.split(".") for word in ("embed", "stem", "bn1", "cls_token", "pos_", "position")
    )


def find_stack(module: nn.Module) -> Stack | None:
    """The ``ModuleList``/``Sequential`` of two or more blocks holding the most parameters (a transformer's
    layers, a CNN's stages); None when the module has none."""
    best: tuple[int, str, list[nn.Module]] | None = None
    for name, child in module.named_modules():
        if not isinstance(child, (nn.ModuleList, nn.Sequential)) or len(child) < 2:
            continue
        blocks = list(child)
        size = sum(p.numel() for p in child.parameters())
        if size and (best is None or size > best[0]):
            best = (size, name, blocks)
    return None if best is None else Stack(best[1], best[2])


def has_attention(block: nn.Module) -> bool:
    """Whether a block runs attention (a transformer layer), by its submodules' types and names."""
    return any(
        isinstance(m, nn.MultiheadAttention) or "attention" in type(m).__name__.lower() or name.endswith("attn")
        for name, m in block.named_modules()
    )
