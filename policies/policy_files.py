"""Policy model files (MODEL): any registered policy with everything needed to act, e.g. a BC policy
from `realrl bc train` that `realrl validate --policy MODEL` runs and a residual run freezes as its
base. The file holds the policy's description (kind, observation/action spec, config: the state
normalisation is in the weights), its weights, what it was trained on (`info`) and a content hash
over description and weights (its identity: a residual names the base it corrects by it). Tensors
plus one JSON string, read with torch.load(weights_only=True): no pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from formats.files import atomic_write
from policies.base import Policy
from policies.encoders import tensors_hash
from policies.registry import build_policy

FORMAT = "realrl-policy/1"


@dataclass(frozen=True)
class PolicyModel:
    policy: Policy
    hash: str
    info: dict[str, Any] = field(default_factory=dict)  # task, demos, losses, training settings
    path: str = ""


def policy_hash(description: dict[str, Any], weights: dict[str, torch.Tensor]) -> str:
    """Content hash of what a policy does: its description and weights."""
    return tensors_hash(weights, prefix=json.dumps(description, sort_keys=True).encode())


def save_policy(path: str | Path, policy: Policy, info: dict[str, Any]) -> str:
    """Write the model atomically; returns its hash. A frozen encoder trunk from its own model file
    stays in that file (the description names it with its hash), as in a weight push."""
    description = policy.describe()
    weights = {name: t.detach().cpu() for name, t in policy.pushed_state_dict().items()}
    digest = policy_hash(description, weights)
    meta = {"format": FORMAT, "description": description, "hash": digest, "info": info}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({"meta": json.dumps(meta), "weights": weights}, f))
    return digest


def read_policy_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, weights) of a model file, checked: its format, and that its contents still hash to the
    identity it was saved with. A missing, truncated, foreign or edited file is refused, naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"policy model {path}: no such file (write one with `realrl bc train`)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(data["meta"])
        weights = data["weights"]
    except Exception as error:  # a torch.load of a truncated or foreign file raises many kinds
        raise ValueError(f"policy model {path}: not a readable realrl policy file ({error})") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"policy model {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    digest = policy_hash(meta["description"], weights)
    if digest != meta["hash"]:
        raise ValueError(f"policy model {path}: its contents hash to {digest}, the file says {meta['hash']}")
    return meta, weights


def load_policy(path: str | Path, device="cpu", config_changes: dict[str, Any] | None = None) -> PolicyModel:
    """Read, check and build the policy of a model file (read_policy_file). `config_changes` sets
    acting-time fields of its config (a shortcut policy's `sample_steps`, a residual's `base` file);
    the hash is of the file as saved."""
    meta, weights = read_policy_file(path)
    description = meta["description"]
    if config_changes:
        description = {**description, "config": {**description.get("config", {}), **config_changes}}
    try:
        policy = build_policy(description, device=device)
        policy.load_weights(weights)
    except ValueError as error:
        raise ValueError(f"policy model {path}: {error}") from error
    return PolicyModel(policy.eval(), meta["hash"], meta.get("info", {}), str(path))
