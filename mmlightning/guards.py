"""Guards of a long run: the message when the loss goes non-finite, and no checkpoint from non-finite weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmlightning.contracts import HeadOutput
from mmlightning.errors import NonFiniteLossError

if TYPE_CHECKING:
    from mmlightning.module import MultimodalModule


def check_finite_weights(model: MultimodalModule) -> None:
    """Raise instead of saving a checkpoint whose weights hold NaN or infinite values (one sync per checkpoint)."""
    params = dict(model.named_parameters())
    finite = (
        torch.stack([torch.isfinite(p).all() for p in params.values()]) if params else torch.ones(0, dtype=torch.bool)
    )
    if not bool(finite.all()):
        broken = next(name for name, ok in zip(params, finite.tolist()) if not ok)
        raise NonFiniteLossError(
            f"not saving a checkpoint at step {model.global_step}: parameter {broken} holds NaN or infinite values "
            "(the last update diverged). Lower the learning rate or clip gradients (--trainer.gradient_clip_val=1.0)."
        )


def nonfinite_message(model: MultimodalModule, total: Tensor, outputs: dict[str, HeadOutput], batch_idx: int) -> str:
    """What a user needs when training meets a NaN or infinite loss: where, each head's loss, the last finite one."""
    heads = ", ".join(f"'{k}' {float(o.loss.detach()):.4g}" for k, o in outputs.items() if o.loss is not None)
    last = (
        "no finite loss before it"
        if model._last_finite is None
        else (f"the last finite loss was {float(model._last_finite[1]):.4g} at step {model._last_finite[0]}")
    )
    return (
        f"training stopped at step {model.global_step} (epoch {model.current_epoch}, batch {batch_idx}): the loss is "
        f"{float(total.detach())} (per head: {heads}); {last}. Lower the learning rate (--model.optimizer.init_args.lr), clip "
        "gradients (--trainer.gradient_clip_val=1.0), or skip a few such steps (--model.max_nonfinite_steps=N). "
        "Checkpoints written before this step are unaffected; none is written from this state."
    )
