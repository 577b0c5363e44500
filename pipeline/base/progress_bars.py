"""How often a text progress bar redraws: often on a terminal, seldom where its output is kept (a CI log, a file).

tqdm redraws a bar by writing a carriage return and the whole line again; a terminal shows the last one, a log
keeps every one (a cached-miss demo run wrote about 300 redraws of its extraction bar into one line of its log).
"""

from __future__ import annotations

import sys
from typing import IO, Any

TERMINAL_INTERVAL = 0.5  # seconds between redraws where someone watches the bar
LOG_INTERVAL = 30.0  # elsewhere: a line every half minute, and the final state when the bar closes


def redraw_interval(stream: IO[str] | None = None) -> float:
    """The seconds between redraws of a bar written to `stream` (sys.stderr, tqdm's default, when None)."""
    target: Any = stream if stream is not None else sys.stderr
    try:
        return TERMINAL_INTERVAL if target.isatty() else LOG_INTERVAL
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return LOG_INTERVAL
