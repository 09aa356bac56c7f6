"""The composition an actor runs every control tick, in this order: base policy -> optional
residual correction -> optional operator takeover -> optional safety filter -> action bounds; the
robot's own hard limits (workspace box, step limits, watchdog) sit below all of this in robot/.
Each stage is a small piece with one method, so adding one (a residual over a frozen BC policy, a
SpaceMouse operator, a V-OCBF filter) touches no other. Training, evaluation and `validate` run
this same composition; each decision says which stage produced the executed action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from policies import Policy

Observation = dict[str, Any]


class Residual(Protocol):
    def correct(self, obs: Observation, base_action: np.ndarray, deterministic: bool) -> np.ndarray:
        """The corrected action, given the base policy's (policies.residual.ResidualPolicy)."""


class Operator(Protocol):
    def takeover(self, obs: Observation, proposed: np.ndarray) -> np.ndarray | None:
        """The operator's action when they take over this tick, else None."""


class SafetyFilter(Protocol):
    def filter(self, obs: Observation, proposed: np.ndarray) -> np.ndarray:
        """The closest safe action to `proposed` (itself when it is safe)."""


@dataclass(frozen=True)
class Decision:
    action: np.ndarray  # float32, in [-1, 1]: what the robot is told to do
    source: str  # the stage that produced it: "policy", "operator" or "filter" (formats.wire.ACTION_SOURCES)
    filter_delta: float = 0.0  # L2 distance the safety filter moved the action
    base_action: np.ndarray | None = None  # what the base stage proposed (a residual's input)

    @property
    def intervened(self) -> bool:
        return self.source == "operator"


class UnsafeAction(ValueError):
    """A stage produced a non-finite action or one of the wrong shape: nothing is sent."""


def bound_action(action: np.ndarray, action_dim: int) -> np.ndarray:
    """The last stage: refuse NaN/inf or a wrong shape, clip into [-1, 1]."""
    action = np.asarray(action, dtype=np.float32)
    if action.shape != (action_dim,):
        raise UnsafeAction(f"action of shape {action.shape}, expected ({action_dim},)")
    if not np.all(np.isfinite(action)):
        raise UnsafeAction(f"non-finite action {action.tolist()}: nothing was sent to the robot")
    return np.clip(action, -1.0, 1.0)


class ActionPipeline:
    """base -> residual -> operator -> safety filter -> bounds. `explore` (e.g. uniform random)
    replaces the base policy for the first `explore_steps` stochastic decisions: exploration before
    learning starts."""

    def __init__(
        self,
        policy: Policy,
        *,
        residual: Residual | None = None,
        operator: Operator | None = None,
        safety_filter: SafetyFilter | None = None,
        explore: Policy | None = None,
        explore_steps: int = 0,
    ) -> None:
        base, own_residual = policy.stages()  # a residual policy: its frozen base, then itself
        self.base, self.residual = base, residual if residual is not None else own_residual
        self.operator, self.safety_filter = operator, safety_filter
        self.explore, self.explore_steps = explore, explore_steps if explore is not None else 0
        self.action_dim = base.spec.action_dim
        self.decisions = 0  # stochastic decisions so far (the exploration schedule counts them)

    def reset(self) -> None:
        """An episode starts."""
        self.base.reset()
        if self.explore is not None:
            self.explore.reset()

    def propose(self, obs: Observation) -> np.ndarray:
        """The base stage's action for `obs` alone (a residual run's final observation, whose base
        action the replay keeps for the last step's target)."""
        return self._propose(self.base, obs, deterministic=False)

    def _propose(self, policy: Policy, obs: Observation, deterministic: bool) -> np.ndarray:
        # Under a residual the base acts deterministically: exploration is the residual's.
        return policy.act(obs, deterministic=deterministic or self.residual is not None)

    def act(self, obs: Observation, deterministic: bool = False) -> Decision:
        exploring = not deterministic and self.decisions < self.explore_steps
        if not deterministic:
            self.decisions += 1
        policy = self.explore if exploring else self.base
        action = base_action = self._propose(policy, obs, deterministic)
        source = "policy"
        if self.residual is not None:
            action = self.residual.correct(obs, base_action, deterministic)
        if self.operator is not None:
            takeover = self.operator.takeover(obs, action)
            if takeover is not None:
                action, source = np.asarray(takeover, dtype=np.float32), "operator"
        delta = 0.0
        if self.safety_filter is not None:
            filtered = bound_action(self.safety_filter.filter(obs, action), self.action_dim)
            delta = float(np.linalg.norm(filtered - bound_action(action, self.action_dim)))
            if delta > 0.0:
                action, source = filtered, "filter"
        return Decision(bound_action(action, self.action_dim), source, delta, base_action)
