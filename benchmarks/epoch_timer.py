"""A callback for benchmarks: writes each training epoch's wall time (seconds) to a JSON file."""

import json
import time
from pathlib import Path

from lightning.pytorch import Callback


class EpochTimer(Callback):
    def __init__(self, path: str) -> None:
        self.path, self.times, self.start = Path(path), [], 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(round(time.perf_counter() - self.start, 1))
        self.path.write_text(json.dumps(self.times))
