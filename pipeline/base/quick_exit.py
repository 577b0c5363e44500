"""Ending a finished command without the interpreter's teardown, which TensorFlow makes slow.

With TensorFlow loaded, Python's own exit (clearing every module, then TensorFlow's C++ destructors) takes
over a second (measured: docs/benchmarks-history.md), to free memory the system frees anyway. What a finished command does
need is kept: the exit handlers run (logging's flush among them) and the standard streams are flushed; and if
a thread other than the main one is still working, the ordinary exit is taken, as it waits for that thread.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def quick_exit(code: int) -> NoReturn:
    """Ends the process with `code` once the exit handlers have run and stdout and stderr are flushed."""
    if any(thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
           for thread in threading.enumerate()):
        sys.exit(code)  # the ordinary exit joins a working thread; leaving at once would cut it off
    atexit._run_exitfuncs()  # what modules asked to do at exit (logging flushes its handlers)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said there
            pass
    os._exit(code)
