"""Policies by kind: `describe()` names a policy, `build_policy` builds it back from that (in
another process: the actor builds what the learner trains, then loads the pushed weights)."""

from __future__ import annotations

from typing import Any

from policies.base import Policy, PolicySpec
from policies.random import RandomPolicy
from policies.sac import GaussianPolicy, HybridGripperPolicy

POLICIES: dict[str, type[Policy]] = {}


def register_policy(policy_class: type[Policy]) -> type[Policy]:
    """Add a policy class under its `kind` (usable as a class decorator)."""
    POLICIES[policy_class.kind] = policy_class
    return policy_class


for _policy_class in (GaussianPolicy, HybridGripperPolicy, RandomPolicy):
    register_policy(_policy_class)


def build_policy(description: dict[str, Any], device="cpu", seed: int = 0) -> Policy:
    """The policy a `describe()` names, with fresh weights (load the real ones with load_weights)."""
    kind = description.get("kind")
    if kind not in POLICIES:
        raise ValueError(f"unknown policy kind {kind!r}; known: {sorted(POLICIES)}")
    spec = PolicySpec.from_json(description["spec"])
    return POLICIES[kind].from_description(spec, description.get("config", {}), device=device, seed=seed)
