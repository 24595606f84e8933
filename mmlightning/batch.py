"""`Batch`: what the datamodule gives the model (re-exported by :mod:`mmlightning.contracts`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class Batch:
    """One collated batch, as the datamodule gives it to the model.

    Attributes:
        inputs: per encoder key, the tensors its processor's ``collate`` made (always with ``present``).
        targets: per head key, the encoded targets (heads without a target column have none).
        ids: one id per sample (the manifest's id column, or ``file:line``).
        raw: per column, the raw manifest values of the columns the model reads (for previews and metrics).
        root: the folder media paths are relative to.
    """

    inputs: dict[str, dict[str, Tensor]]
    targets: dict[str, Tensor] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    raw: dict[str, list[Any]] = field(default_factory=dict)
    root: str = "."

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: Any, **kwargs: Any) -> Batch:
        """The batch with its tensors on ``device``. Lightning moves a batch with this, so it never walks the raw
        values and ids (plain Python: a list per column) element by element, as it does an unknown structure."""
        return Batch(_moved(self.inputs, device), _moved(self.targets, device), self.ids, self.raw, self.root)


def _moved(value: Any, device: Any) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _moved(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(item, device) for item in value)
    return value
