"""A residual run with actor processes (`realrl train --actors 2 --residual --base-policy MODEL`):
each actor builds the residual over its copy of the base (pushes carry only the residual), its
records carry the base's action at every observation, the final one included, and the learner's
replay holds each step exactly once with the base's action beside it."""

import json
import os
import subprocess
import sys

import torch
from cluster import HANG_S, assert_exactly_once, stored_steps

from formats.config import load_config
from learner.configs import ServerConfig, TrainConfig
from policies import PolicySpec
from policies.bc import GaussianBCPolicy
from policies.configs import BCPolicyConfig
from policies.policy_files import load_policy, save_policy
from realrl.commands.train import build_loop


def test_residual_actors_send_the_bases_action_with_every_observation(tmp_path):
    base = GaussianBCPolicy.build(PolicySpec(17, 4), BCPolicyConfig(hidden=(16,)), seed=2)
    base.encoder.fit_state_normalizer(torch.randn(50, 17) * 0.1)
    save_policy(tmp_path / "base.pt", base, {})
    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "2", "--out", str(out), "--json"]
    command += ["--task", "PegInsert", "--obs", "state", "--demo-episodes", "2", "--steps", "240"]
    command += ["--residual", "--base-policy", str(tmp_path / "base.pt"), "--actor-hz", "40"]
    command += ["--learning-starts", "32", "--batch-size", "32", "--agent.hidden", "32", "32"]
    command += [
        "--agent.critics",
        "2",
        "--eval-every",
        "1000",
        "--eval-episodes",
        "1",
        "--weights-every",
        "5",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, timeout=HANG_S, env=env)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout.decode().splitlines()[-1])
    found = stored_steps(out)
    for final in summary["actor_processes"]:
        assert final["steps_acked"] == final["steps_recorded"] > 0
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])
    loop = build_loop(load_config(TrainConfig, out / "config.json"), out, server=ServerConfig(), resume=True)
    try:
        batch = loop.replay.online.sample(256)
    finally:
        loop.source.journal.close()
        loop.close()
    stateless = load_policy(tmp_path / "base.pt").policy  # its action is a function of the observation
    with torch.no_grad():
        torch.testing.assert_close(batch.base_action, stateless.act_batch(batch.state, {}, True))
        torch.testing.assert_close(batch.next_base_action, stateless.act_batch(batch.next_state, {}, True))
    assert float((batch.action - batch.base_action).abs().max()) <= 0.1 + 1e-5  # within the scale
