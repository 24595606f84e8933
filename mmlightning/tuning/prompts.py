"""`PromptTuning`: learned prompt tokens prepended to the token sequence of an encoder's Transformer stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mmlightning.tuning.base import Tuning, TuningError, canonical, part_module, select
from mmlightning.tuning.blocks import Stack, find_stack, has_attention

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class PromptTuning(Tuning):
    """Learned prompt tokens before the tokens of an encoder's Transformer stack; the encoder's weights frozen.

    Works for any encoder whose forward runs a stack of Transformer blocks (a Hugging Face encoder's layers, a
    timm ViT's blocks): ``length`` prompt vectors join the sequence at the first block (``deep=False``, prompt
    tuning) or are replaced by a fresh set at every block (``deep=True``, as in deep prompt tuning / VPT-deep), and
    are removed after the last block, so the encoder's output keeps its shape. Attention masks passed to the blocks
    are widened so every token sees the prompts. Only the prompts (and the parts after the encoder) train.
    """

    def __init__(self, parts: Sequence[str] | str, length: int = 10, deep: bool = False, init_std: float = 0.02):
        super().__init__(parts)
        if length < 1:
            raise TuningError(f"PromptTuning: length must be >= 1, got {length}")
        self.length, self.deep, self.init_std = length, deep, init_std
        self.prompts = nn.ParameterDict()
        self._hooked: set[int] = set()

    def _stack(self, model: MultimodalModel, part: str) -> tuple[nn.Module, Stack]:
        module = part_module(model, part)
        if module is None:
            select(model, part, self.kind)
            raise TuningError(f"PromptTuning: part '{part}' must be an encoder (a module), not a glob")
        stack = find_stack(module)
        if stack is None or not has_attention(stack.blocks[0]):
            raise TuningError(
                f"PromptTuning: part '{canonical(model, part)}' has no Transformer stack (a list of blocks with "
                "attention) to prepend prompt tokens to; use it on a Transformer encoder (a Hugging Face text model, "
                "a timm ViT), or use LoRA or LayerwiseLRDecay for this one"
            )
        return module, stack

    def adapt(self, model: MultimodalModel) -> None:
        for part in self.parts:
            module, stack = self._stack(model, part)
            module.requires_grad_(False)
            key = canonical(model, part).replace(".", "__")
            if key not in self.prompts:
                width = _width(stack.blocks[0])
                ref = next(module.parameters())
                count = len(stack) if self.deep else 1
                init = torch.randn(count, self.length, width, device=ref.device, dtype=ref.dtype) * self.init_std
                self.prompts[key] = nn.Parameter(init)
            if id(module) not in self._hooked:
                self._hooked.add(id(module))
                for index, block in enumerate(stack.blocks):
                    block.register_forward_pre_hook(self._before(key, index), with_kwargs=True)
                stack.blocks[-1].register_forward_hook(self._after)

    def _before(self, key: str, index: int) -> Any:
        def hook(block: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            given, named = list(args), dict(kwargs)
            hidden, put = _hidden(given, named)
            count = self.length
            prompts = self.prompts[key][index if self.deep else 0].expand(hidden.shape[0], -1, -1)
            if index == 0:
                hidden, real = torch.cat([prompts, hidden], 1), hidden.shape[1]
            else:
                real = hidden.shape[1] - count
                if self.deep:
                    hidden = torch.cat([prompts, hidden[:, count:]], 1)
            given = [_widen(a, real, count) for a in given]
            named = {k: _widen(v, real, count) for k, v in named.items()}
            put(given, named, hidden)  # after widening: the tokens themselves are not a mask
            return tuple(given), named

        return hook

    def _after(self, block: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, Tensor):
            return output[:, self.length :]
        if isinstance(output, tuple):
            return (output[0][:, self.length :], *output[1:])
        raise TuningError(f"PromptTuning: the last block returned {type(output).__name__}; expected a tensor or tuple")

    def describe(self, model: MultimodalModel) -> str:
        count = sum(p.numel() for p in self.prompts.values())
        kind = "deep (every block)" if self.deep else "shallow (first block)"
        return f"PromptTuning on {', '.join(self.parts)}: {self.length} prompt tokens, {kind}, {count:,} parameters"


def _width(block: nn.Module) -> int:
    for module in block.modules():
        if isinstance(module, nn.LayerNorm):
            return int(module.normalized_shape[0])
    for module in block.modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    raise TuningError(f"PromptTuning: cannot tell the token width of {type(block).__name__} (no LayerNorm or Linear)")


def _hidden(args: list, kwargs: dict) -> tuple[Tensor, Any]:
    """The block's token sequence ``(B, N, D)`` and how to put a new one back."""
    if args and isinstance(args[0], Tensor) and args[0].ndim == 3:

        def put_arg(a: list, k: dict, value: Tensor) -> None:
            a[0] = value

        return args[0], put_arg
    for name in ("hidden_states", "x", "src"):
        if isinstance(kwargs.get(name), Tensor):

            def put_kwarg(a: list, k: dict, value: Tensor, name: str = name) -> None:
                k[name] = value

            return kwargs[name], put_kwarg
    raise TuningError("PromptTuning: a block was called without a (batch, tokens, width) tensor to prepend prompts to")


def _widen(value: Any, real: int, count: int) -> Any:
    """A mask over ``real`` tokens widened to the prompts too: prompts are real tokens, so they get the first
    token's value (which is always a real one), whatever the mask's convention (bool, additive, 0/1)."""
    if not isinstance(value, Tensor) or value.ndim < 2 or value.shape[-1] != real:
        return value
    value = torch.cat([value[..., :1].expand(*value.shape[:-1], count), value], -1)
    if value.ndim >= 3 and value.shape[-2] == real:
        value = torch.cat([value[..., :1, :].expand(*value.shape[:-2], count, value.shape[-1]), value], -2)
    return value
