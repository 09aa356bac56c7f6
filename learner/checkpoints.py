"""Checkpoint directories of a run: checkpoints/step_<env steps>/ (step_<env steps>-u<updates>/
for a later one at the same env step, made after more updates) holds state.pt (weights,
optimisers, random streams, replay and step-source state), counters.json (small, read by pruning
and resume without loading state.pt), policy.pt (the policy alone as a model file,
policies.policy_files: what `realrl validate --checkpoint` runs and a robot deploys) and critic.pt
(the critic ensemble with its encoder, which ranks candidates for `validate --best-of N`; absent
where the critic does not score whole actions); `latest` is a symlink to the newest. Every write
is atomic: a crash leaves the previous checkpoint or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from formats.files import atomic_write

POLICY_FILE = "policy.pt"
CRITIC_FILE = "critic.pt"


class Checkpoints:
    def __init__(self, root: Path, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"--keep-checkpoints must be >= 1, got {keep}")
        self.root, self.keep = root, keep

    @property
    def latest(self) -> Path:
        return self.root / "latest"

    def exists(self) -> bool:
        return self.latest.exists()

    def save(
        self, env_steps: int, state: dict, counters: dict, write_models: Callable[[Path], object]
    ) -> tuple[Path, dict]:
        """Write a checkpoint (`write_models(directory)` writes its policy and critic files into the
        checkpoint's directory), point `latest` at it, drop all but the newest `keep`. Returns its
        path and the counters of the oldest checkpoint still kept (what pruned logs must still hold)."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step_{env_steps:09d}"
        if (self.root / name).exists():  # more updates at the same env step (a finish's owed ones):
            name += f"-u{counters['updates']:09d}"  # a new name, sorted after it, so `latest` never dangles
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        atomic_write(tmp / "state.pt", lambda f: torch.save(state, f))
        atomic_write(tmp / "counters.json", lambda f: f.write(json.dumps(counters).encode()))
        write_models(tmp)
        final = self.root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        link = self.root / ".latest.tmp"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(name)
        os.replace(link, self.latest)
        return final, self._prune()

    def _prune(self) -> dict:
        kept = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in kept[: -self.keep]:
            shutil.rmtree(old)
        return read_counters(kept[-self.keep :][0])

    def load_latest(self, device: torch.device) -> tuple[dict, dict]:
        """(state, counters) of the newest checkpoint."""
        state = torch.load(self.latest / "state.pt", map_location=device, weights_only=False)
        return state, read_counters(self.latest)


def read_counters(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "counters.json").read_text())
