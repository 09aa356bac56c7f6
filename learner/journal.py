"""The learner's write-ahead journal of step records: an ack means durable, so every record is
appended here and fsynced before it is acked, long before the next checkpoint writes the replay.

A resumed learner restores its checkpoint and replays the journal from the offset the checkpoint
names, so a SIGKILL between checkpoints loses nothing that was acked. Offsets are global byte
positions; the journal is a sequence of files `journal_<first offset>.log`, a new one started at
every checkpoint so that files no kept checkpoint needs can be deleted whole. A record is
[payload length u64][crc32 u32][payload = wire.pack_frames(frames)]; a torn or damaged tail (a kill
mid-write) is cut off when the journal is opened."""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from realrl.wire import pack_frames, unpack_frames

_log = logging.getLogger(__name__)
_FILE = re.compile(r"^journal_(\d{16})\.log$")
_HEAD = struct.Struct("<QI")


class Journal:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
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
        self._file = open(self._path(self._start), "ab")  # noqa: SIM115 (held open: appended to per batch)

    def files(self) -> list[tuple[int, Path]]:
        found = [(int(m[1]), p) for p in self.directory.iterdir() if (m := _FILE.match(p.name))]
        return sorted(found)

    def append(self, frames: Sequence[bytes | memoryview]) -> int:
        """Buffer one record; returns its offset. Durable only after `sync`."""
        payload = pack_frames(frames)
        offset = self.end
        self._file.write(_HEAD.pack(len(payload), zlib.crc32(payload)))
        self._file.write(payload)
        self.end += _HEAD.size + len(payload)
        return offset

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def rotate(self) -> None:
        """Start a new file at the current end (called at checkpoints)."""
        self.sync()
        if self.end == self._start:
            return
        self._file.close()
        self._start = self.end
        self._file = open(self._path(self._start), "ab")  # noqa: SIM115 (held open: appended to per batch)

    def records(self, start: int) -> Iterator[tuple[int, list[memoryview]]]:
        """(offset, frames) of every record from offset `start` (a record boundary) to the end."""
        self._file.flush()
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
                length, _ = _HEAD.unpack_from(data, position)
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

    def close(self) -> None:
        self._file.close()

    def _path(self, start: int) -> Path:
        return self.directory / f"journal_{start:016d}.log"


def _valid_length(path: Path) -> int:
    """Bytes of whole, checksummed records at the start of `path`."""
    data = path.read_bytes()
    position = 0
    while position + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, position)
        body = position + _HEAD.size
        if body + length > len(data) or zlib.crc32(data[body : body + length]) != crc:
            break
        position = body + length
    return position
