"""`realrl bc train` on scripted demos recorded here: the rows and their chunks against the demo
files, the split's exact accounting, the JSON other tools read, bad input, and a small chunk policy
that succeeds in the twin (`realrl validate`)."""

import json

import numpy as np
import pytest
import torch

from actors.demos import record_scripted
from formats.episodes import iter_episodes
from learner.bc import action_chunks, load_demo_steps, split_episodes
from realrl.cli import main


@pytest.fixture(scope="module")
def peg_demos(tmp_path_factory):
    """20 successful scripted PegInsert demos (state), about 10 steps each."""
    directory = tmp_path_factory.mktemp("demos") / "peg"
    record_scripted(
        "PegInsert", 20, directory, seed=10_000, obs_mode="state", successes_only=True, progress=False
    )
    return directory


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else None, captured.err


def test_action_chunks_repeat_the_last_action_past_the_end_and_mask_it():
    actions = np.array([[1.0], [2.0], [3.0]], np.float32)
    chunks, mask = action_chunks(actions, 2)
    assert chunks[:, :, 0].tolist() == [[1, 2], [2, 3], [3, 3]]
    assert mask.tolist() == [[True, True], [True, True], [True, False]]


def test_demo_rows_are_every_step_with_its_chunk_and_the_split_holds_each_episode_once(peg_demos):
    episodes = list(iter_episodes(peg_demos))
    data = load_demo_steps(peg_demos, "auto", chunk=4)
    assert len(data.states) == sum(len(e) for e in episodes) and data.episodes == 20
    first = episodes[0]
    np.testing.assert_array_equal(data.states[: len(first)].numpy(), first.states[:-1])
    np.testing.assert_array_equal(data.chunks[1, :, :].numpy(), first.action[1:5])
    train, held = split_episodes(20, 0.1, seed=0)
    assert len(held) == 2 and sorted([*train, *held]) == list(range(20))
    assert len(data.rows(train)) + len(data.rows(held)) == len(data.states)
    with pytest.raises(ValueError, match="--obs pixels: .* holds state demos"):
        load_demo_steps(peg_demos, "pixels", chunk=1)


def test_bc_train_writes_a_model_whose_chunk_policy_succeeds_in_the_twin(peg_demos, tmp_path, capsys):
    """Measured here: the chunk policy, 1500 steps on these 20 demos, 9 of validate's 10 episodes
    (random actions: 0). BC on ~170 steps is sensitive to float rounding of another CPU, so the test
    asks for 5 of 10: a policy that learned the task, not this machine's exact weights."""
    model = tmp_path / "peg-chunk.pt"
    code, summary, err = run(
        capsys, "bc", "train", "--demos", str(peg_demos), "--out", str(model), "--policy", "chunk",
        "--steps", "1500", "--eval-every", "500", "--threads", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert summary["policy"] == "chunk" and summary["task"] == "realrl/PegInsert-v0"
    assert summary["train_steps_of_data"] + summary["held_out_steps_of_data"] == len(
        load_demo_steps(peg_demos, "auto", 1).states
    )
    assert summary["val_loss"] < summary["val_loss_before"] / 3 and len(summary["model_hash"]) == 16
    assert (tmp_path / "peg-chunk.loss.png").stat().st_size > 10_000

    code, validated, err = run(
        capsys, "validate", "--task", "PegInsert", "--policy", str(model), "--episodes", "10",
        "--min-success", "0.5", "--json",
    )  # fmt: skip
    assert validated["model_hash"] == summary["model_hash"] and validated["kind"] == "bc-chunk"
    assert validated["success_rate"] >= 0.5 and code == 0, validated
    assert validated["violations"] == 0 and validated["episodes"] == 10

    code, _, err = run(capsys, "validate", "--task", "PickCube", "--policy", str(model), "--episodes", "1")
    assert code == 2 and "task PickCube: the policy expects" in err and "'state_dim': 17" in err


def test_pixel_bc_computes_a_frozen_trunks_maps_once_per_frame_and_keeps_the_trunk_out_of_the_model(
    tmp_path, monkeypatch
):
    from learner.bc import train_bc
    from learner.configs import BCTrainConfig, PretrainConfig
    from learner.pretrain import pretrain
    from policies.configs import BCPolicyConfig
    from policies.encoders import FrozenEncoder
    from policies.policy_files import load_policy

    demos = tmp_path / "pick-px"
    record_scripted("PickCube", 2, demos, seed=3, obs_mode="pixels", image_size=32, progress=False)
    trunk = tmp_path / "trunk.pt"
    pretrain(PretrainConfig(data=(str(demos),), out=str(trunk), steps=0), progress=False)
    frames = []
    maps = FrozenEncoder.maps
    monkeypatch.setattr(
        FrozenEncoder, "maps", lambda self, images: frames.append(len(images)) or maps(self, images)
    )
    model = BCPolicyConfig(hidden=(16,), encoder=f"pretrained:{trunk}")
    config = BCTrainConfig(
        demos=str(demos), out=str(tmp_path / "m.pt"), policy="chunk", steps=6, eval_every=3, model=model
    )
    summary = train_bc(config, progress=False)
    steps = sum(len(e) for e in iter_episodes(demos))
    assert frames == [2 * steps]  # both cameras of every step, in one pass before training
    assert summary["spec"] == {
        "state_dim": 7,
        "action_dim": 4,
        "cameras": ["front", "wrist"],
        "image_size": 32,
    }
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["weights"]
    assert not [name for name in saved if "trunk" in name] and any("heads" in name for name in saved)
    policy = load_policy(tmp_path / "m.pt").policy
    assert policy.config.encoder == f"pretrained:{trunk.resolve()}" and policy.config.encoder_hash
    episode = next(iter_episodes(demos))
    obs = {"state": episode.states[0], "images": {c: f[0] for c, f in episode.images.items()}}
    action = policy.act(obs)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
