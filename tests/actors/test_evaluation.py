"""Evaluation rollouts through the actor's composition, in the twin: the scripted expert as a
policy succeeds, a random policy does not, and the eval row is the mean over episodes."""

import numpy as np

from actors.composition import ActionPipeline
from actors.evaluation import EpisodeResult, Evaluator, rollout, summarize
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
    assert row["success_rate"] == 2 / 3 and row["eval_return"] == 2 / 3
    no_signal = summarize([EpisodeResult(-3.0, None, 200, 0), EpisodeResult(-1.0, None, 200, 0)])
    assert no_signal == {"success_rate": None, "eval_return": -2.0}
    assert np.isfinite(row["eval_return"])
