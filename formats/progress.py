"""Progress bars (tqdm) that suit a terminal and a log file alike: the one way realrl draws them.
Stdlib + tqdm only; imports nothing of ours."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["LOG_REDRAW_S", "progress_bar"]

LOG_REDRAW_S = 30.0
"""Seconds between redraws when the bar's stream is not a terminal. Each redraw of a tqdm bar is
another `\\r`-joined copy of it; at tqdm's 0.1 s a `make demo` log collected ~300 kB of them."""


def progress_bar(**kwargs: Any) -> tqdm:
    """`tqdm(**kwargs)`, redrawing at most every `LOG_REDRAW_S` seconds (plus its first and last
    draw) unless it writes to a terminal (its `file`, by default stderr)."""
    stream = kwargs.get("file") or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        # maxinterval too: tqdm's monitor thread otherwise forces a redraw every 10 s.
        kwargs.setdefault("mininterval", LOG_REDRAW_S)
        kwargs.setdefault("maxinterval", LOG_REDRAW_S)
    return tqdm(**kwargs)
