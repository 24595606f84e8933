"""Lightning's ``CheckpointIO`` for local files, writing each checkpoint to a temporary name and renaming it when
whole (:func:`mmlightning.files.replacing`; no copy of it in memory first). A full or read-only disk is a
:class:`mmlightning.files.DiskError` naming the folder and the last good checkpoint. Every
:class:`mmlightning.trainer.Trainer` gets one unless its ``plugins`` bring their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from mmlightning.files import last_checkpoint, replacing


class SafeCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):  # a remote URL: fsspec's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        with replacing(path, last_checkpoint(Path(path).parent)) as temporary:
            torch.save(checkpoint, temporary)
        return None
