"""Runs `python -m pipeline ARGS...` and kills the process (SIGKILL, no clean-up) after KILL_AFTER_STEPS
training steps of fine-tuning: a hard kill in the middle of an epoch, at a known place.

    python tests/kill_during_fine_tuning.py KILL_AFTER_STEPS run --fine-tune ...
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# Run as a script, Python puts this folder, tests/, first on sys.path, and there the test folder tests/tokenization/
# (no __init__.py) would be taken for the `tokenization` package. The checkout's root replaces it, as the current
# folder does for `python -m pipeline` run from the root.
TESTS = Path(__file__).resolve().parent
sys.path[:] = [str(TESTS.parent), *(entry for entry in sys.path if Path(entry or ".").resolve() != TESTS)]

from pipeline.commands import cli  # noqa: E402
from pipeline.training import fine_tune  # noqa: E402


def main() -> int:
    kill_after_steps = int(sys.argv[1])
    original = fine_tune.TextsProgress.on_train_batch_end
    steps = 0

    def counting(self: fine_tune.TextsProgress, batch: int, logs: dict[str, float] | None = None) -> None:
        nonlocal steps
        original(self, batch, logs)
        steps += 1
        if steps == kill_after_steps:
            os.kill(os.getpid(), signal.SIGKILL)

    fine_tune.TextsProgress.on_train_batch_end = counting  # type: ignore[method-assign]
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
