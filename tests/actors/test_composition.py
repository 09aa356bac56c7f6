"""The actor's composition: stage order, which stage produced the action, the filter's change by
hand, the exploration schedule, and that nothing non-finite or out of bounds leaves it."""

import numpy as np
import pytest
import torch

from actors.composition import ActionPipeline, UnsafeAction, bound_action
from policies import Policy, PolicySpec
from policies.random import RandomPolicy

SPEC = PolicySpec(state_dim=2, action_dim=3)


class ConstantPolicy(Policy):
    kind = "constant"

    def __init__(self, value):
        super().__init__(SPEC)
        self.value = torch.tensor(value, dtype=torch.float32)
        self.resets = 0

    def reset(self):
        self.resets += 1

    def act_batch(self, state, images, deterministic=False):
        return self.value.expand(len(state), -1)


class AddResidual:
    def correct(self, obs, base_action, deterministic):
        return base_action + np.float32(0.25)


class OperatorAfter:
    """Takes over from the `after`-th tick on with a fixed command."""

    def __init__(self, after):
        self.after, self.ticks = after, 0

    def takeover(self, obs, proposed):
        self.ticks += 1
        return np.array([0.0, 0.0, -1.0], np.float32) if self.ticks > self.after else None


class ClampX:
    """A safety filter that keeps x <= 0.5."""

    def filter(self, obs, proposed):
        return np.array([min(proposed[0], 0.5), *proposed[1:]], np.float32)


OBS = {"state": np.zeros(2, np.float32)}


def test_stages_run_in_order_and_the_record_says_which_produced_the_action():
    pipeline = ActionPipeline(
        ConstantPolicy([0.5, 0.0, 0.9]),
        residual=AddResidual(),
        operator=OperatorAfter(1),
        safety_filter=ClampX(),
    )
    first = pipeline.act(OBS)
    # base 0.5 + residual 0.25 = 0.75; the filter clamps x to 0.5 (moved by 0.25); z: 0.9 + 0.25 -> 1.
    np.testing.assert_allclose(first.action, [0.5, 0.25, 1.0])
    assert first.source == "filter" and first.filter_delta == pytest.approx(0.25) and not first.intervened
    np.testing.assert_allclose(first.base_action, [0.5, 0.0, 0.9])  # the base's proposal, kept apart
    second = pipeline.act(OBS)  # the operator takes over; its command is safe: the filter leaves it
    np.testing.assert_array_equal(second.action, [0.0, 0.0, -1.0])
    assert second.source == "operator" and second.filter_delta == 0.0 and second.intervened


def test_a_policy_alone_is_the_policy_stage():
    decision = ActionPipeline(ConstantPolicy([0.1, -0.2, 0.3])).act(OBS)
    np.testing.assert_allclose(decision.action, [0.1, -0.2, 0.3])
    assert decision.action.dtype == np.float32
    assert (decision.source, decision.filter_delta) == ("policy", 0.0)


def test_bounds_clip_and_refuse_nan_or_a_wrong_shape():
    np.testing.assert_array_equal(bound_action(np.array([2.0, -3.0, 0.5]), 3), [1.0, -1.0, 0.5])
    with pytest.raises(UnsafeAction, match="non-finite"):
        bound_action(np.array([0.0, np.nan, 0.0]), 3)
    with pytest.raises(UnsafeAction, match="shape"):
        bound_action(np.zeros(4), 3)
    with pytest.raises(UnsafeAction, match="non-finite"):
        ActionPipeline(ConstantPolicy([float("inf"), 0.0, 0.0])).act(OBS)


def test_exploration_replaces_the_base_for_the_first_stochastic_decisions_only():
    base = ConstantPolicy([0.0, 0.0, 0.0])
    pipeline = ActionPipeline(base, explore=RandomPolicy(SPEC, seed=0), explore_steps=3)
    actions = [pipeline.act(OBS).action for _ in range(5)]
    assert all(np.abs(a).max() > 0 for a in actions[:3]) and all(not a.any() for a in actions[3:])
    # Deterministic decisions (evaluation) never explore and do not count.
    fresh = ActionPipeline(base, explore=RandomPolicy(SPEC, seed=0), explore_steps=3)
    assert not fresh.act(OBS, deterministic=True).action.any() and fresh.decisions == 0
    pipeline.reset()
    assert base.resets == 1
