"""The learner's write-ahead journal of step records: an ack means durable, so every record is
written here before it is acked (and fsynced first where the server is told to survive power cuts
too), long before the next checkpoint writes the replay.

A resumed learner restores its checkpoint and replays the journal from the offset the checkpoint
names, so a SIGKILL between checkpoints loses nothing that was acked. Offsets are global byte
positions; the journal is a sequence of files `journal_<first offset>.log`, a new one started at
every checkpoint so that files no kept checkpoint needs can be deleted whole. A record is
[payload length u64][crc32 u32][flags u8][payload = wire.pack_frames(frames)], written with one writev
and no copy of the frames; a torn or damaged tail (a kill
mid-write) is cut off when the journal is opened."""

from __future__ import annotations

import collections
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from formats.wire import frame_table, unpack_frames

_log = logging.getLogger(__name__)
_FILE = re.compile(r"^journal_(\d{16})\.log$")
_HEAD = struct.Struct("<QIB")  # payload length, crc32 (if flagged), flags
_CHECKSUMMED = 1


class Journal:
    """Appends are queued and written by a writer thread (one writev per record, no copy of the
    frames, the GIL released), so the server thread goes on decoding the next batch meanwhile;
    `written` is the offset the kernel holds, which a SIGKILL of this process cannot lose."""

    def __init__(self, directory: str | Path, checksums: bool = False) -> None:
        """`checksums`: crc32 every record, so a tail torn by a power cut (zeroed pages inside a
        record of the right length) is found; a SIGKILL can only leave a short last record, which
        the length finds. crc32 of 100 kB of camera frames per step costs ~30% of ingest speed."""
        self.directory = Path(directory)
        self.checksums = checksums
        self.directory.mkdir(parents=True, exist_ok=True)
        files = self.files()
        if files:
            start, path = files[-1]
            size = _valid_length(path)
            if size != path.stat().st_size:
                _log.warning(
                    "journal: cut a torn tail off %s (%d -> %d bytes)", path.name, path.stat().st_size, size
                )
                os.truncate(path, size)
            self._start, self.end = start, start + size
        else:
            self._start = self.end = 0
        self.written = self.end  # offset up to which the records are in the kernel's hands
        self._fd = self._open(self._start)
        self._fd_lock = threading.Lock()  # an fsync must not meet a rotate or close
        self._queue: collections.deque[tuple[list, int]] = collections.deque()
        self._changed = threading.Condition()
        self._error: OSError | None = None
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()

    def files(self) -> list[tuple[int, Path]]:
        found = [(int(m[1]), p) for p in self.directory.iterdir() if (m := _FILE.match(p.name))]
        return sorted(found)

    def append(self, frames: Sequence[bytes | memoryview]) -> int:
        """Queue one record (the frames must stay unchanged until written); returns its offset.
        In the kernel once `written` passes it; on disk after `sync`."""
        table = frame_table(frames)
        checksum = 0
        if self.checksums:
            checksum = zlib.crc32(table)
            for frame in frames:
                checksum = zlib.crc32(frame, checksum)
        length = len(table) + sum(memoryview(f).nbytes for f in frames)
        parts = [_HEAD.pack(length, checksum, _CHECKSUMMED if self.checksums else 0), table, *frames]
        offset = self.end
        self.end += _HEAD.size + length
        with self._changed:
            if self._error is not None:
                raise self._error
            self._queue.append((parts, self.end))
            self._changed.notify_all()
        return offset

    def flush(self) -> int:
        """Wait until every queued record is written; returns that offset."""
        with self._changed:
            self._changed.wait_for(lambda: self.written == self.end or self._error is not None)
            if self._error is not None:
                raise self._error
        return self.end

    def sync(self) -> int:
        """Make everything appended so far durable (flush, then fsync); returns that offset. Call it
        from any thread; a rotate or close waits for it."""
        end = self.flush()
        with self._fd_lock:
            os.fsync(self._fd)
        return end

    def rotate(self) -> None:
        """Start a new file at the current end (at checkpoints; nobody appends meanwhile)."""
        self.sync()
        with self._fd_lock, self._changed:
            if self.end == self._start:
                return
            os.close(self._fd)
            self._start = self.end
            self._fd = self._open(self._start)

    def clear(self) -> None:
        """Forget every record (a fresh run in this directory), as ReplayLog.clear does."""
        self.flush()
        with self._fd_lock, self._changed:
            os.close(self._fd)
            for _, path in self.files():
                path.unlink()
            self._start = self.end = self.written = 0
            self._fd = self._open(0)

    def close(self) -> None:
        self.sync()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._writer.join()
        os.close(self._fd)

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
                fd = self._fd
            try:
                for parts, end in batch:
                    _write_all(fd, parts)
                    self.written = end
            except OSError as error:  # disk full...: appends raise it from now on, nothing is acked
                _log.error("journal: writing failed: %s", error)
                with self._changed:
                    self._error = error
                    self._changed.notify_all()
                return
            with self._changed:
                self._changed.notify_all()

    def records(self, start: int) -> Iterator[tuple[int, list[memoryview]]]:
        """(offset, frames) of every record from offset `start` (a record boundary) to the end."""
        self.flush()
        files = self.files()
        for index, (first, path) in enumerate(files):
            last = files[index + 1][0] if index + 1 < len(files) else self.end
            if last <= start:
                continue
            if first > start:
                raise ValueError(f"{self.directory}: journal bytes {start}..{first} are missing")
            data = path.read_bytes()
            position = start - first
            while position < len(data):
                length, _, _ = _HEAD.unpack_from(data, position)
                body = position + _HEAD.size
                yield first + position, unpack_frames(memoryview(data)[body : body + length])
                position = body + length
            start = last

    def prune(self, keep_from: int) -> None:
        """Delete files that lie wholly before offset `keep_from`."""
        files = self.files()
        for (first, path), (following, _) in zip(files, files[1:], strict=False):
            if following <= keep_from and first != self._start:
                path.unlink()

    def _open(self, start: int) -> int:
        return os.open(self._path(start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _path(self, start: int) -> Path:
        return self.directory / f"journal_{start:016d}.log"


def _write_all(fd: int, parts: list) -> None:
    written = os.writev(fd, parts)
    total = sum(memoryview(p).nbytes for p in parts)
    if written != total:  # a short write: finish it
        remaining = b"".join(bytes(p) for p in parts)[written:]
        while remaining:
            remaining = remaining[os.write(fd, remaining) :]


def _valid_length(path: Path) -> int:
    """Bytes of whole, checksummed records at the start of `path`."""
    data = path.read_bytes()
    position = 0
    while position + _HEAD.size <= len(data):
        length, checksum, flags = _HEAD.unpack_from(data, position)
        body = position + _HEAD.size
        if body + length > len(data) or flags & ~_CHECKSUMMED:
            break
        if flags & _CHECKSUMMED and zlib.crc32(data[body : body + length]) != checksum:
            break
        position = body + length
    return position
