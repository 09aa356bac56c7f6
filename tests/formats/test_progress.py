"""formats.progress: a progress bar redraws rarely when its stream is a log file, not a terminal."""

import io

from formats.progress import LOG_REDRAW_S, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def draw(stream: io.StringIO, updates: int = 600) -> str:
    """The bytes a bar writes over `updates` steps that take one (simulated) second each."""
    bar = progress_bar(total=updates, file=stream, desc="train", unit="step")
    clock = [bar.last_print_t]
    bar._time = lambda: clock[0]  # tqdm's own clock, so the test takes no ten minutes
    for _ in range(updates):
        clock[0] += 1.0
        bar.update(1)
    bar.close()
    return stream.getvalue()


def test_a_bar_in_a_log_file_redraws_every_30_s():
    log = draw(io.StringIO())
    assert 600 / LOG_REDRAW_S - 2 <= log.count("\r") <= 600 / LOG_REDRAW_S + 3, log
    assert "600/600" in log and len(log) < 25 * 100  # ~90 bytes a redraw
    terminal = draw(Terminal())
    assert terminal.count("\r") >= 600  # a terminal keeps tqdm's redraw rate: every update here
    assert len(terminal) > 10 * len(log)


def test_explicit_intervals_win():
    bar = progress_bar(total=1, file=io.StringIO(), mininterval=1.0)
    assert (bar.mininterval, bar.maxinterval) == (1.0, LOG_REDRAW_S)
    bar.close()
    bar = progress_bar(total=1, file=Terminal())
    assert bar.mininterval == 0.1  # tqdm's default
    bar.close()
