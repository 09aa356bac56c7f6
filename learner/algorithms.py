"""Algorithms by name: `--algorithm` picks one, `--agent.*` configures it. An algorithm trains a
policy (policies/) and owns critics, targets, optimisers and the update; see learner.sac."""

from __future__ import annotations

import torch

from learner.configs import SACConfig
from learner.hybrid import HybridGripperAlgorithm
from learner.sac import SACAlgorithm
from policies import PolicySpec

ALGORITHMS: dict[str, type[SACAlgorithm]] = {
    algorithm.name: algorithm for algorithm in (SACAlgorithm, HybridGripperAlgorithm)
}


def make_algorithm(
    name: str, config: SACConfig, spec: PolicySpec, device: str | torch.device = "cpu", seed: int = 0
) -> SACAlgorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name](config, spec, device, seed)
