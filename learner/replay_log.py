"""Incremental on-disk log of a ReplayBuffer, so checkpoints never rewrite the whole replay.

Each `append` writes one segment file holding the slots written since the previous append (by the
buffer's write counter), plus the newest slot of the previous segment again: that slot held only an
observation when it was saved and receives its step record later. Segments are written to a
temporary name, fsynced and renamed, so a crash leaves whole segments or none. A checkpoint stores
the log end it reached and the buffer's small meta state; `restore` replays the segments that end
at or before that point in order (later copies of a slot win). Segments wholly overwritten by the
ring are deleted once a newer checkpoint no longer needs them."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from formats.files import atomic_write
from learner.replay import ReplayBuffer

_SEGMENT = re.compile(r"^segment_(\d{12})_(\d{12})\.pt$")


class ReplayLog:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.end = 0  # write counter covered by the segments so far

    def segments(self) -> list[tuple[int, int, Path]]:
        """(first, end, path) of every complete segment, oldest first."""
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        return sorted(found, key=lambda segment: (segment[1], segment[0]))

    def append(self, buffer: ReplayBuffer) -> int:
        """Write the slots written since the last append; returns the new log end."""
        end = buffer.written
        first = max(0, self.end - 1)
        if end > self.end:
            slots = buffer.export_slots(first, end)
            path = self.directory / f"segment_{slots['first']:012d}_{end:012d}.pt"
            atomic_write(path, lambda f: torch.save(slots, f))
        self.end = max(self.end, end)
        return self.end

    def restore(self, buffer: ReplayBuffer, end: int, meta: dict) -> None:
        """Rebuild `buffer` as it was when the log reached `end` (a fresh buffer of the same config).
        Segments written after that point (by a run that crashed before its next checkpoint) are
        deleted so the resumed run writes its own."""
        covered = max(0, end - buffer.capacity)  # older slots are wholly overwritten
        for first, segment_end, path in self.segments():
            if segment_end > end:
                path.unlink()
            elif segment_end > covered:
                if first > covered:
                    raise ValueError(f"{self.directory}: replay slots {covered}..{first} are missing")
                buffer.import_slots(torch.load(path, map_location="cpu", weights_only=True))
                covered = segment_end
        if covered != end:
            raise ValueError(f"{self.directory}: replay slots {covered}..{end} are missing")
        buffer.load_meta_state_dict(meta)
        if buffer.written != end:
            raise ValueError(f"replay log restored to {buffer.written} slots, checkpoint says {end}")
        self.end = end

    def clear(self) -> None:
        """Forget every segment (a fresh run in this directory)."""
        for _, _, path in self.segments():
            path.unlink()
        self.end = 0

    def prune(self, capacity: int, keep_from: int) -> None:
        """Delete segments no checkpoint from log end `keep_from` on needs: wholly overwritten."""
        for _, segment_end, path in self.segments():
            if segment_end <= keep_from - capacity:
                path.unlink()
