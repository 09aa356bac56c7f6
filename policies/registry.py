"""Policies by kind: `describe()` names a policy, `build_policy` builds it back from that (in
another process: the actor builds what the learner trains, then loads the pushed weights)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from policies.base import Policy, PolicySpec
from policies.bc import BC_POLICIES
from policies.encoders import PRETRAINED_PREFIX
from policies.random import RandomPolicy
from policies.residual import ResidualPolicy
from policies.sac import GaussianPolicy, HybridGripperPolicy

_log = logging.getLogger(__name__)
POLICIES: dict[str, type[Policy]] = {}


def register_policy(policy_class: type[Policy]) -> type[Policy]:
    """Add a policy class under its `kind` (usable as a class decorator)."""
    POLICIES[policy_class.kind] = policy_class
    return policy_class


for _policy_class in (
    GaussianPolicy,
    HybridGripperPolicy,
    RandomPolicy,
    ResidualPolicy,
    *BC_POLICIES.values(),
):
    register_policy(_policy_class)


def build_policy(description: dict[str, Any], device="cpu", seed: int = 0) -> Policy:
    """The policy a `describe()` names, with fresh weights (load the real ones with load_weights)."""
    kind = description.get("kind")
    if kind not in POLICIES:
        raise ValueError(f"unknown policy kind {kind!r}; known: {sorted(POLICIES)}")
    spec = PolicySpec.from_json(description["spec"])
    return POLICIES[kind].from_description(spec, description.get("config", {}), device=device, seed=seed)


def with_encoder_model(description: dict[str, Any], path: str | None) -> dict[str, Any]:
    """The description with its frozen encoder's model file read from `path` (this machine's copy)
    instead of the path the learner named; the policy's encoder hash still has to match it, so a
    different model is refused when the policy is built. None, or a policy without such an encoder:
    the description as it is (with a warning for a path it has no use for)."""
    if path is None:
        return description
    encoder = description.get("config", {}).get("encoder", "")
    if not encoder.startswith(PRETRAINED_PREFIX):
        _log.warning("--encoder-model %s: the run's policy has no encoder model (encoder %r)", path, encoder)
        return description
    config = {**description["config"], "encoder": f"{PRETRAINED_PREFIX}{Path(path).resolve()}"}
    return {**description, "config": config}
