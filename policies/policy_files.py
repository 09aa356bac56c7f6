"""Model files of what acts and what judges actions. A policy MODEL (realrl-policy/1): any
registered policy with everything needed to act, e.g. a BC policy from `realrl bc train` that
`realrl validate --policy MODEL` runs and a residual run freezes as its base. A critic file
(realrl-critic/1): a run's critic ensemble with its encoder, which ranks a sampling policy's
candidates at test time (best-of-N). Every checkpoint holds one of each.

A file holds the model's description (kind, observation/action spec, config: the state
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
from policies.verifier import CriticVerifier

FORMAT = "realrl-policy/1"
CRITIC_FORMAT = "realrl-critic/1"
# Per format: what the file holds (errors name it) and where one comes from.
MODEL_FILES = {
    FORMAT: ("policy", "write one with `realrl bc train`, or take a checkpoint's policy.pt"),
    CRITIC_FORMAT: ("critic", "every checkpoint of `realrl train` holds one: critic.pt"),
}


@dataclass(frozen=True)
class PolicyModel:
    policy: Policy
    hash: str
    info: dict[str, Any] = field(default_factory=dict)  # task, demos, losses, training settings
    path: str = ""


@dataclass(frozen=True)
class CriticModel:
    critic: CriticVerifier
    hash: str
    info: dict[str, Any] = field(default_factory=dict)  # task, run, counters
    path: str = ""


def policy_hash(description: dict[str, Any], weights: dict[str, torch.Tensor]) -> str:
    """Content hash of what a model does: its description and weights."""
    return tensors_hash(weights, prefix=json.dumps(description, sort_keys=True).encode())


def save_model(path: str | Path, model: Policy | CriticVerifier, info: dict[str, Any], format: str) -> str:
    """Write the model atomically; returns its hash. A frozen encoder trunk from its own model file
    stays in that file (the description names it with its hash), as in a weight push."""
    description = model.describe()
    weights = {name: t.detach().cpu() for name, t in model.pushed_state_dict().items()}
    digest = policy_hash(description, weights)
    meta = {"format": format, "description": description, "hash": digest, "info": info}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({"meta": json.dumps(meta), "weights": weights}, f))
    return digest


def save_policy(path: str | Path, policy: Policy, info: dict[str, Any]) -> str:
    return save_model(path, policy, info, FORMAT)


def save_critic(path: str | Path, critic: CriticVerifier, info: dict[str, Any]) -> str:
    return save_model(path, critic, info, CRITIC_FORMAT)


def read_policy_file(
    path: str | Path, format: str = FORMAT
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, weights) of a model file, checked: its format, and that its contents still hash to the
    identity it was saved with. A missing, truncated, foreign or edited file is refused, naming it."""
    path = Path(path)
    holds, origin = MODEL_FILES[format]
    what = f"{holds} model"
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file ({origin})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(data["meta"])
        weights = data["weights"]
    except Exception as error:  # a torch.load of a truncated or foreign file raises many kinds
        raise ValueError(f"{what} {path}: not a readable realrl {holds} file ({error})") from error
    if meta.get("format") != format:
        raise ValueError(f"{what} {path}: format {meta.get('format')!r}, expected {format!r}")
    digest = policy_hash(meta["description"], weights)
    if digest != meta["hash"]:
        raise ValueError(f"{what} {path}: its contents hash to {digest}, the file says {meta['hash']}")
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


def load_critic(path: str | Path, device="cpu") -> CriticModel:
    """Read, check and build the critic of a critic file, frozen."""
    meta, weights = read_policy_file(path, CRITIC_FORMAT)
    try:
        critic = CriticVerifier.from_description(meta["description"], device=device)
        critic.load_weights(weights)
    except ValueError as error:
        raise ValueError(f"critic model {path}: {error}") from error
    return CriticModel(critic.eval().requires_grad_(False), meta["hash"], meta.get("info", {}), str(path))
