"""A callback for tests: the process kills itself with SIGKILL (as `kill -9` does) after a given training step."""

import os
import signal

from lightning.pytorch import Callback


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
