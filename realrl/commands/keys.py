"""`realrl keys generate DIR --name NAME`: a CURVE key pair for the learner or an actor, in pyzmq's
certificate format (NAME.key holds the public key, NAME.key_secret both). The learner's allow-list
is a directory of actors' public .key files; secret files are readable by their owner only."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class KeysConfig:
    directory: str = field(metadata={"positional": True, "path": "output_dir"})
    """Where the key files go (created if missing)."""
    name: str
    """Key name, e.g. learner or robot-1."""

    def check(self) -> None:
        check_name(self.name)


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"--name must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")


def generate_keys(directory: str | Path, name: str) -> dict[str, str]:
    import zmq
    import zmq.auth

    if not zmq.has("curve"):
        raise RuntimeError("this libzmq has no CURVE support; install pyzmq's wheels (they bundle libsodium)")
    check_name(name)
    directory = Path(directory)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing:
        raise ValueError(f"refusing to overwrite existing keys: {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    os.chmod(public, 0o644)
    return {"public": str(public), "secret": str(secret)}
