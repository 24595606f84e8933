"""A dataset over validated manifest rows, turned into tensors by the model's processor bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mmlightning.bundle import ProcessorBundle
from mmlightning.data.manifest import Row


class ManifestDataset(Dataset):
    """Checked rows of one manifest; ``targets``: the heads whose targets it gives."""

    def __init__(
        self,
        rows: Sequence[Row],
        root: Path,
        file: str,
        bundle: ProcessorBundle,
        train: bool,
        targets: Sequence[str] = (),
    ) -> None:
        self.rows, self.root, self.file, self.bundle, self.train = list(rows), root, file, bundle, train
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        try:
            return self.bundle.item(
                row.values, self.root, self.train, f"{Path(self.file).name}:{row.line}", self.targets
            )
        except (ValueError, OSError) as err:
            raise ValueError(
                f"{self.file}:{row.line}: {err} (this row passed the checks before training; did the file change?)"
            ) from err
