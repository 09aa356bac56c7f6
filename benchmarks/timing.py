"""The one clock of the learner benchmarks (ours and LeRobot's): torch only, no project imports."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by torch; CPU: peak resident set size of this process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed_rate(
    step: Callable[[], None], device: torch.device, seconds: float, chunk: int
) -> tuple[float, float]:
    """(updates/s over the whole window, median ms per update over chunks of `chunk` updates)."""
    chunk_ms, updates = [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or not chunk_ms:
        chunk_start = time.perf_counter()
        for _ in range(chunk):
            step()
        synchronize(device)  # once per chunk: the hot loop itself never waits on the device
        chunk_ms.append((time.perf_counter() - chunk_start) * 1000 / chunk)
        updates += chunk
    return updates / (time.perf_counter() - start), statistics.median(chunk_ms)
