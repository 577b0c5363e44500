"""What a user sees while the heads train: one progress bar per head on a terminal, one line per head elsewhere.

A bar redraws itself with carriage returns, which a terminal overwrites in place but a CI log, a file or a
notebook's captured stderr keeps, one copy per redraw; so when the stream is not a terminal nothing is
written until the head is done, and then one line says what the bar would have ended on.
"""

from __future__ import annotations

import sys
import time
from typing import IO

import numpy as np
import tf_keras as keras
from tqdm import tqdm


class HeadProgress(keras.callbacks.Callback):
    """Epochs done and the best validation AUROC so far, or the metric `monitor` names with its `mode`
    (`train_head` puts the metrics in `logs` first)."""

    def __init__(self, label: str, epochs: int, stream: IO[str] | None = None, *, position: int = 0,
                 line_at_end: bool = True, monitor: str = "val_auroc", mode: str = "max"):
        super().__init__()
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.shown = "val " + monitor.removeprefix("val_").upper()  # val AUROC, val RMSE
        self.label, self.epochs = label, epochs
        self.stream = stream  # None: sys.stderr as it is when training starts (tests and notebooks swap it)
        self.position = position  # the bar's row on a terminal, when several heads train at once
        self.line_at_end = line_at_end  # False: the caller calls write_line, so heads side by side write in order
        self.best, self.best_epoch, self.epochs_done = -np.inf, 0, 0  # best: of sign * value
        self.bar: tqdm | None = None
        self.started = self.seconds = 0.0

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.stream = self.stream or sys.stderr
        self.started = time.perf_counter()
        if _is_terminal(self.stream):
            self.bar = tqdm(total=self.epochs, desc=self.label, unit="epoch", file=self.stream, leave=True,
                            position=self.position,
                            bar_format="{desc}: {n_fmt}/{total_fmt} epochs |{bar}| {elapsed}{postfix}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get(self.monitor, float("nan"))
        self.epochs_done = epoch + 1
        if np.isfinite(value) and self.sign * value > self.best:
            self.best, self.best_epoch = self.sign * float(value), epoch + 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.shown} {value:.4f}, best {self._best()}", refresh=False)
            self.bar.update(1)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.close()
        elif self.line_at_end:
            self.write_line()

    def write_line(self) -> None:
        """Off a terminal, the one line that says what the bar would have ended on (on a terminal, nothing)."""
        if self.bar is not None or self.stream is None:
            return
        stopped = " (stopped early)" if self.epochs_done < self.epochs else ""
        self.stream.write(f"{self.label}: {self.epochs_done}/{self.epochs} epochs{stopped}, best {self.shown} "
                          f"{self._best()}, {self.seconds:.1f} s\n")
        self.stream.flush()

    def _best(self) -> str:
        return f"{self.sign * self.best:.4f} (epoch {self.best_epoch})" if self.best_epoch else "n/a"


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
