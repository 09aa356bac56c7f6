"""Pixels through the real split, with a frozen encoder from a model file: frames cross the wire once
as uint8, the learner caches their maps, the actors load the same model (checked by its hash) and
act with the pushed head and actor. An actor whose model file differs from the learner's is refused
at connect, naming both hashes. Tiny 16x16 frames: the point is the plumbing."""

import json
import os
import subprocess
import sys

import torch
from cluster import HANG_S, assert_exactly_once, stored_steps

from policies.encoder_files import save_encoder_model
from policies.encoders import FrameTrunk

PIXELS = ["--task", "PickCube", "--obs", "pixels", "--image-size", "16"]


def model_file(path, seed: int) -> str:
    torch.manual_seed(seed)
    return save_encoder_model(path, FrameTrunk(16, channels=8), ("front", "wrist"), {"objective": "none"})


def test_train_from_pixels_with_two_actor_processes_and_a_pretrained_encoder(tmp_path):
    model = tmp_path / "encoder.pt"
    digest = model_file(model, 0)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "2", "--out", str(out), "--json"]
    command += [*PIXELS, "--agent.encoder", f"pretrained:{model}", "--demo-episodes", "1", "--steps", "200"]
    command += ["--actor-hz", "40", "--learning-starts", "32", "--batch-size", "32", "--agent.hidden", "32"]
    command += ["--agent.critics", "2", "--weights-every", "5", "--eval-every", "200", "--eval-episodes", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, timeout=HANG_S, env=env)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout.decode().splitlines()[-1])
    assert json.loads((out / "config.json").read_text())["agent"]["encoder_hash"] == digest
    found = stored_steps(out)
    for final in summary["actor_processes"]:
        assert final["steps_acked"] == final["steps_recorded"] > 0
        assert final["policy_version"] >= 0  # it acted with pushed weights (head and actor)
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])
    assert summary["env_steps"] == sum(f["steps_recorded"] for f in summary["actor_processes"])


def test_an_actor_whose_model_file_differs_is_refused_naming_both_hashes(processes, tmp_path):
    model = tmp_path / "encoder.pt"
    learner_hash = model_file(model, 0)
    copy = tmp_path / "robot-pc" / "encoder.pt"  # the robot PC's copy of the learner's model
    copy.parent.mkdir()
    copy.write_bytes(model.read_bytes())
    learner = processes.learner(
        "learner", tmp_path / "run", *PIXELS, "--agent.encoder", f"pretrained:{model}"
    )
    endpoint = processes.endpoint(learner)
    actor_hash = model_file(model, 1)  # the actor's machine holds another model at that path
    actor = processes.actor("actor", endpoint, *PIXELS)
    stdout, _ = actor.communicate(timeout=HANG_S)
    assert actor.returncode == 2
    final = json.loads(stdout.decode().splitlines()[-1])
    assert final["steps_recorded"] == 0
    assert f"hash to {actor_hash}, but this run's encoder is {learner_hash}" in final["error"]
    # Pointed at its own copy of the run's model, an actor gets in and its steps are stored.
    actor = processes.actor("actor-2", endpoint, *PIXELS, "--encoder-model", str(copy), "--max-steps", "30")
    stdout, _ = actor.communicate(timeout=HANG_S)
    final = json.loads(stdout.decode().splitlines()[-1])
    assert actor.returncode == 0, final
    assert final["steps_recorded"] == final["steps_acked"] == 30
    processes.stop(learner)
