"""The actor's on-disk spool of records the learner has not acked yet.

Each record is the multipart message exactly as it goes on the wire, one file per sequence number,
written to a temporary name and renamed, so a killed actor leaves whole records or none and a
restarted one resends everything still pending. The spool is bounded: when `max_bytes` would be
exceeded, `put` refuses the record (the actor's transport budgets all sessions' spools together
before a record is queued, so this bound is a backstop). A damaged record is moved aside and its
seq remembered in `lost`, so the transport can tell the learner it is gone. Not thread-safe by
itself: one transport thread owns it. No fsync: records must survive a process restart, which the page cache
does; a power cut may lose the newest unacked steps."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from formats.wire import WireError, pack_frames, unpack_frames

_log = logging.getLogger(__name__)
_RECORD = re.compile(r"^(\d{12})\.rec$")


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int = 2 * 2**30) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.refused = 0  # put() calls refused (over max_bytes) or failed (the disk)
        self.lost = {int(p.name[:12]) for p in self.directory.glob("*.rec.bad")}  # damaged, set aside
        self.damaged = 0  # records found unreadable by this process (moved aside, never resent)
        for leftover in self.directory.glob(".*.tmp"):  # a write cut short by a kill
            leftover.unlink()
        self._sizes = {seq: path.stat().st_size for seq, path in self._files()}
        self._total = sum(self._sizes.values())  # kept in step with _sizes: put() checks it per record

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def last_seq(self) -> int:
        """Newest unacked seq, -1 when empty."""
        return max(self._sizes, default=-1)

    @property
    def nbytes(self) -> int:
        return self._total

    def put(self, seq: int, frames: Sequence[bytes | memoryview]) -> bool:
        """Store one record; False (and counted) when the spool is full."""
        blob = pack_frames(frames)
        if self.nbytes + len(blob) > self.max_bytes:
            self.refused += 1
            return False
        path = self._path(seq)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        self._total += len(blob) - self._sizes.get(seq, 0)
        self._sizes[seq] = len(blob)
        return True

    def ack(self, seq: int) -> None:
        """The learner stored `seq`: forget it (acks for unknown seqs are ignored: resends)."""
        size = self._sizes.pop(seq, None)
        if size is not None:
            self._total -= size
            self._path(seq).unlink(missing_ok=True)

    def ack_through(self, seq: int) -> int:
        """Forget every record up to and including `seq` (a cumulative ack); returns how many."""
        done = [s for s in self._sizes if s <= seq]
        for s in done:
            self.ack(s)
        return len(done)

    def pending(self, after: int = -1) -> Iterator[tuple[int, list[bytes]]]:
        """(seq, frames) of every unacked record with seq > `after`, oldest first. A damaged file is
        moved aside to NAME.bad (kept for inspection, never resent), counted in `damaged` and logged."""
        for seq in sorted(s for s in self._sizes if s > after):
            path = self._path(seq)
            try:
                frames = [bytes(f) for f in unpack_frames(path.read_bytes())]
            except WireError as error:
                _log.warning("spool: %s: %s; moved aside to %s.bad", path, error, path.name)
                os.replace(path, path.with_name(f"{path.name}.bad"))
                self._total -= self._sizes.pop(seq)
                self.damaged += 1
                self.lost.add(seq)
                continue
            yield seq, frames

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.rec"

    def _files(self) -> Iterator[tuple[int, Path]]:
        for path in self.directory.iterdir():
            match = _RECORD.match(path.name)
            if match:
                yield int(match[1]), path
