"""On-disk episode format for demonstrations (and later interventions), shared by recorders and
the learner. A directory holds one compressed `.npz` per episode plus `manifest.json`:

    manifest.json          {"format", "version", "task", "obs_mode", "obs_spec", "action_dim",
                            "source", "episodes": [{"file", "length", "return", "success", "sha256",
                            "seed" (recorders that seed their episodes)}]}
    episode_000000.npz     state (T+1, n) float32, image_<camera> (T+1, H, W, 3) uint8,
                           action (T, A) float32, reward (T,) float32, terminated / truncated /
                           success / intervened (T,) bool, safety_margin (T,) float32

Observation t pairs with action t; row T is the final observation. Files and manifest are written
to a temporary name, fsynced and renamed, so a crash never leaves a half-written file under a real
name; a truncated or corrupt file, or one whose shapes differ from the manifest's `obs_spec` /
`action_dim`, raises `EpisodeFormatError` naming it."""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formats.files import atomic_write

FORMAT = "realrl-episodes"
VERSION = 1
MANIFEST = "manifest.json"
STEP_FIELDS = {
    "action": np.float32,
    "reward": np.float32,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "success": np.bool_,
    "safety_margin": np.float32,
    "intervened": np.bool_,
}


class EpisodeFormatError(ValueError):
    """A demo directory or episode file that is missing, truncated, corrupt or inconsistent."""


@dataclass
class Episode:
    """One episode: T steps, T + 1 observations."""

    states: np.ndarray  # (T+1, n) float32
    images: dict[str, np.ndarray]  # camera -> (T+1, H, W, 3) uint8; empty in state mode
    action: np.ndarray  # (T, A) float32
    reward: np.ndarray  # (T,)
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    safety_margin: np.ndarray
    intervened: np.ndarray
    # (T+1, A) float32: a residual run's base-policy action at each observation. Computed (by the
    # actor, or by relabelling demos with the base), never written to episode files.
    base_action: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)

    @property
    def episode_return(self) -> float:
        return float(self.reward.sum())

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"state": self.states}
        arrays.update({f"image_{name}": frames for name, frames in self.images.items()})
        arrays.update({name: getattr(self, name) for name in STEP_FIELDS})
        return arrays

    def validate(self, where: str = "episode") -> None:
        t = len(self.action)
        if t == 0:
            raise EpisodeFormatError(f"{where}: an episode needs at least one step")
        if len(self.states) != t + 1:
            raise EpisodeFormatError(f"{where}: {len(self.states)} states for {t} actions (need T+1)")
        for name, frames in self.images.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != t + 1:
                raise EpisodeFormatError(
                    f"{where}: image_{name} must be uint8 (T+1, H, W, 3), got {frames.dtype} {frames.shape}"
                )
        for name in STEP_FIELDS:
            if len(getattr(self, name)) != t:
                raise EpisodeFormatError(f"{where}: {name} has {len(getattr(self, name))} rows, expected {t}")
        expected = (t + 1, self.action.shape[1])
        if self.base_action is not None and self.base_action.shape != expected:
            raise EpisodeFormatError(
                f"{where}: base_action must be (T+1, A) = {expected}, got {self.base_action.shape}"
            )


@dataclass
class EpisodeBuilder:
    """Collects one episode step by step from a gymnasium loop."""

    observations: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, list] = field(default_factory=lambda: {name: [] for name in STEP_FIELDS})

    def start(self, obs: dict[str, Any]) -> None:
        self.observations = [obs]
        self.steps = {name: [] for name in STEP_FIELDS}

    def add(self, action, obs, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        self.observations.append(obs)
        for name, value in (
            ("action", action),
            ("reward", reward),
            ("terminated", terminated),
            ("truncated", truncated),
            ("success", info.get("success", False)),
            ("safety_margin", info.get("safety_margin", np.inf)),
            ("intervened", info.get("intervened", False)),
        ):
            self.steps[name].append(value)

    def build(self) -> Episode:
        cameras = self.observations[0].get("images", {})
        return Episode(
            states=np.stack([o["state"] for o in self.observations]).astype(np.float32),
            images={name: np.stack([o["images"][name] for o in self.observations]) for name in cameras},
            **{
                name: np.asarray(values, dtype=dtype)
                for (name, dtype), values in zip(STEP_FIELDS.items(), self.steps.values(), strict=True)
            },
        )


def obs_spec_of(episode: Episode) -> dict[str, Any]:
    return {
        "state": [int(episode.states.shape[1])],
        "images": {name: list(frames.shape[1:]) for name, frames in episode.images.items()},
    }


def spec_difference(
    spec: dict[str, Any], action_dim: int, other: dict[str, Any], other_action_dim: int
) -> str | None:
    """The first way an (obs spec, action dim) pair differs from another, in words (this vs other),
    or None when they agree."""
    if list(spec["state"]) != list(other["state"]):
        return f"state dim {spec['state']} vs {other['state']}"
    if sorted(spec["images"]) != sorted(other["images"]):
        return f"cameras {sorted(spec['images'])} vs {sorted(other['images'])}"
    for name, shape in spec["images"].items():
        if list(shape) != list(other["images"][name]):
            return f"image_{name} {list(shape)} vs {list(other['images'][name])}"
    if int(action_dim) != int(other_action_dim):
        return f"action dim {action_dim} vs {other_action_dim}"
    return None


def check_manifest(
    manifest: dict[str, Any],
    directory: str | Path,
    *,
    task: str | None,
    obs_spec: dict[str, Any],
    action_dim: int,
    whose: str = "this run's",
) -> None:
    """Refuse demos recorded for another task (unless `task` is None) or with other
    observations/actions than `whose` (e.g. a learner's), naming both."""
    if task is not None and manifest["task"] != task:
        raise EpisodeFormatError(
            f"{directory}: demos of {manifest['task']}, but {whose} task is {task}; "
            "record demos of that task or choose another directory"
        )
    if manifest["obs_spec"] is None:  # no episode yet
        return
    difference = spec_difference(manifest["obs_spec"], manifest["action_dim"], obs_spec, action_dim)
    if difference is not None:
        raise EpisodeFormatError(
            f"{directory}: the demos' observations/actions ({manifest['obs_mode']}: obs spec "
            f"{manifest['obs_spec']}, action dim {manifest['action_dim']}) differ from {whose} "
            f"(obs spec {obs_spec}, action dim {action_dim}): {difference}"
        )


def _check_against_manifest(episode: Episode, manifest: dict[str, Any], path: Path) -> None:
    spec, action_dim = obs_spec_of(episode), int(episode.action.shape[1])
    difference = spec_difference(spec, action_dim, manifest["obs_spec"], manifest["action_dim"])
    if difference is not None:
        raise EpisodeFormatError(
            f"{path}: obs spec {spec} / action dim {action_dim} differ from the directory's "
            f"{manifest['obs_spec']} / {manifest['action_dim']} (file vs manifest: {difference})"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EpisodeWriter:
    """Appends episodes to a directory, creating or continuing its manifest."""

    def __init__(
        self, directory: str | Path, *, task: str, obs_mode: str, source: str, **metadata: Any
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / MANIFEST).exists():
            self.manifest = read_manifest(self.directory)
            if self.manifest["task"] != task or self.manifest["obs_mode"] != obs_mode:
                raise EpisodeFormatError(
                    f"{self.directory}: holds {self.manifest['task']} ({self.manifest['obs_mode']}) demos; "
                    f"refusing to append {task} ({obs_mode}). Use another --out directory."
                )
        else:
            self.manifest = {
                "format": FORMAT,
                "version": VERSION,
                "task": task,
                "obs_mode": obs_mode,
                "source": source,
                "obs_spec": None,
                "action_dim": None,
                **metadata,
                "episodes": [],
            }

    def add(self, episode: Episode, *, seed: int | None = None) -> Path:
        """Write the episode's file, then the manifest listing it. `seed`: the seed it was rolled
        out with, kept so that a recorder appending later never repeats one."""
        index = len(self.manifest["episodes"])
        path = self.directory / f"episode_{index:06d}.npz"
        episode.validate(str(path))
        if self.manifest["obs_spec"] is None:
            self.manifest["obs_spec"] = obs_spec_of(episode)
            self.manifest["action_dim"] = int(episode.action.shape[1])
        else:
            _check_against_manifest(episode, self.manifest, path)
        atomic_write(path, lambda f: np.savez_compressed(f, **episode.arrays()))
        entry = {
            "file": path.name,
            "length": len(episode),
            "return": episode.episode_return,
            "success": episode.succeeded,
            "sha256": _sha256(path),
        }
        if seed is not None:
            entry["seed"] = int(seed)
        self.manifest["episodes"].append(entry)
        self.save_manifest()
        return path

    def save_manifest(self) -> None:
        """(Re)write the manifest; `add` does after every episode."""
        payload = json.dumps(self.manifest, indent=1).encode()
        atomic_write(self.directory / MANIFEST, lambda f: f.write(payload))


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise EpisodeFormatError(f"{path}: no manifest; is {directory} a demo directory?")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EpisodeFormatError(f"{path}: corrupt manifest ({error})") from error
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise EpisodeFormatError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    return manifest


def load_episode(directory: str | Path, entry: dict[str, Any], *, verify: bool = True) -> Episode:
    """Load one manifest entry; any damage raises EpisodeFormatError naming the file."""
    path = Path(directory) / entry["file"]
    if not path.exists():
        raise EpisodeFormatError(f"{path}: listed in the manifest but missing")
    if verify and _sha256(path) != entry["sha256"]:
        raise EpisodeFormatError(f"{path}: corrupt or truncated (sha256 differs from the manifest)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError) as error:
        raise EpisodeFormatError(
            f"{path}: unreadable episode file ({type(error).__name__}: {error})"
        ) from error
    missing = {"state", *STEP_FIELDS} - set(arrays)
    if missing:
        raise EpisodeFormatError(f"{path}: missing arrays {sorted(missing)}")
    episode = Episode(
        states=arrays["state"],
        images={name[len("image_") :]: arrays[name] for name in arrays if name.startswith("image_")},
        **{name: arrays[name] for name in STEP_FIELDS},
    )
    episode.validate(str(path))
    if len(episode) != entry["length"]:
        raise EpisodeFormatError(f"{path}: {len(episode)} steps, manifest says {entry['length']}")
    return episode


def iter_episodes(directory: str | Path, *, verify: bool = True) -> Iterator[Episode]:
    """Every episode of the directory, each checked against the manifest's obs spec and action dim
    (and, with `verify`, its sha256)."""
    manifest = read_manifest(directory)
    for entry in manifest["episodes"]:
        episode = load_episode(directory, entry, verify=verify)
        if manifest["obs_spec"] is None:
            raise EpisodeFormatError(f"{Path(directory) / MANIFEST}: lists episodes but no obs_spec")
        _check_against_manifest(episode, manifest, Path(directory) / entry["file"])
        yield episode


def summarize(directory: str | Path) -> dict[str, Any]:
    """The figures `realrl demos info` prints, from the manifest alone."""
    manifest = read_manifest(directory)
    episodes = manifest["episodes"]
    count = len(episodes)
    return {
        "directory": str(directory),
        "task": manifest["task"],
        "obs_mode": manifest["obs_mode"],
        "source": manifest["source"],
        "episodes": count,
        "transitions": int(sum(e["length"] for e in episodes)),
        "success_rate": sum(e["success"] for e in episodes) / count if count else 0.0,
        "mean_length": sum(e["length"] for e in episodes) / count if count else 0.0,
        "mean_return": sum(e["return"] for e in episodes) / count if count else 0.0,
        "obs_spec": manifest["obs_spec"],
        "action_dim": manifest["action_dim"],
    }
