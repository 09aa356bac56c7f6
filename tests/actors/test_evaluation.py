"""Evaluation rollouts through the actor's composition, in the twin: the scripted expert as a
policy succeeds, a random policy does not, and the eval row is the mean over episodes."""

import numpy as np
import pytest

from actors.composition import ActionPipeline
from actors.evaluation import EpisodeResult, Evaluator, mean_interval, rollout, summarize, wilson_interval
from actors.scripted import ScriptedPolicy
from actors.specs import policy_spec
from envs import make_env
from policies.random import RandomPolicy


def test_the_scripted_expert_as_a_policy_succeeds_and_random_does_not():
    env = make_env("PickCube", obs_mode="state")
    expert = Evaluator(env, episodes=3, seed=5)(ScriptedPolicy(env, seed=0))
    assert expert["success_rate"] == 1.0 and expert["eval_return"] == 1.0  # sparse: 1 on success
    result = rollout(env, ActionPipeline(RandomPolicy(policy_spec(env), seed=0)), seed=5, deterministic=False)
    assert result.success is False and result.length == 100 and result.episode_return == 0.0
    assert len(result.step_ms) == 100 and result.violations >= 0
    env.close()


def test_summary_of_episodes_by_hand():
    results = [
        EpisodeResult(1.0, True, 40, 0),
        EpisodeResult(0.0, False, 100, 2),
        EpisodeResult(1.0, True, 55, 0),
    ]
    row = summarize(results)
    assert row["success_rate"] == 2 / 3 and row["eval_return"] == 2 / 3 and row["eval_episodes"] == 3
    # Wilson, z = 1.96, p = 2/3, n = 3: centre (2/3 + 0.6402) / 2.2805 = 0.5731,
    # half 1.96 * sqrt(0.0741 + 0.1067) / 2.2805 = 0.3654.
    assert row["success_ci"] == pytest.approx([0.2077, 0.9385], abs=1e-4)
    # Returns 1, 0, 1: sd 0.5774, 1.96 * 0.5774 / sqrt(3) = 0.6533 either side of 2/3.
    assert row["eval_return_ci"] == pytest.approx([0.0133, 1.32], abs=1e-3)
    no_signal = summarize([EpisodeResult(-3.0, None, 200, 0), EpisodeResult(-1.0, None, 200, 0)])
    assert no_signal["success_rate"] is None and no_signal["success_ci"] is None
    assert no_signal["eval_return"] == -2.0
    assert no_signal["eval_return_ci"] == pytest.approx([-2 - 1.96, -2 + 1.96], abs=1e-3)  # sd 1.414, n 2
    assert np.isfinite(row["eval_return"])


def test_wilson_interval_by_hand():
    # 10/20: centre 0.5, half 1.96 * sqrt(0.0125 + 0.0024) / 1.192 = 0.2007.
    assert wilson_interval(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    # 20/20 is not certainty: the interval still reaches down to 83.9%; 0/20 up to 16.1%.
    assert wilson_interval(20, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert mean_interval([5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="at least one episode"):
        wilson_interval(0, 0)
