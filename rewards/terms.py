"""Reward shaping terms. A task returns a dict of named terms in [0, 1]; weights come from config
and only their weighted sum is the reward, so every term can be logged on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def tolerance(distance: float, margin: float) -> float:
    """1 at distance 0, falling smoothly towards 0: 1 - tanh(distance / margin)."""
    return float(1.0 - np.tanh(max(distance, 0.0) / margin))


@dataclass(frozen=True)
class RewardTerms:
    """Weights of named terms; `total` is their weighted sum (missing weights count 0)."""

    weights: Mapping[str, float]

    def total(self, terms: Mapping[str, float]) -> float:
        unknown = set(self.weights) - set(terms)
        if unknown:
            raise KeyError(f"reward weights name terms the task does not produce: {sorted(unknown)}")
        return float(sum(self.weights[name] * terms[name] for name in self.weights))
