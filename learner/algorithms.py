"""Algorithms by name: `--algorithm` picks one, `--agent.*` configures it. An algorithm trains a
policy (policies/) and owns critics, targets, optimisers and the update; see learner.sac."""

from __future__ import annotations

import torch

from learner.configs import SACConfig
from learner.hybrid import HybridGripperAlgorithm
from learner.residual import ResidualSACAlgorithm
from learner.sac import SACAlgorithm
from policies import PolicySpec
from policies.configs import ResidualPolicyConfig

ALGORITHMS: dict[str, type[SACAlgorithm]] = {
    algorithm.name: algorithm for algorithm in (SACAlgorithm, HybridGripperAlgorithm)
}


def make_algorithm(
    name: str,
    config: SACConfig,
    spec: PolicySpec,
    device: str | torch.device = "cpu",
    seed: int = 0,
    residual: ResidualPolicyConfig | None = None,
) -> SACAlgorithm:
    """The algorithm `name` (--algorithm); with `residual`, RLPD SAC as a residual over its base."""
    if residual is not None:
        if name != SACAlgorithm.name:
            raise ValueError(f"--residual trains with SAC; --algorithm {name} has no residual variant")
        return ResidualSACAlgorithm(config, spec, device, seed, residual=residual)
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name](config, spec, device, seed)
