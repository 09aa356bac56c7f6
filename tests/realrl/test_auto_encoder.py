"""`--agent.encoder auto`, the default: conv on a GPU; on a CPU a frozen trunk pretrained on the
run's own frames (its demos and as many noisy scripted rollouts) into <out>/encoder.pt, saved in
config.json as what it became, so a resume (even one given `auto` again) and every actor load that
model, checked by its hash. Pretraining is cut to 30 steps here: its objective has its own tests."""

import json
from dataclasses import replace

import torch

import learner.pretrain
from formats.episodes import read_manifest
from learner.configs import SACConfig, TrainConfig
from policies.encoder_files import load_encoder_model
from realrl.commands.train import config_for_resume, train, with_auto_encoder


def pixel_config(**fields) -> TrainConfig:
    return TrainConfig(
        task="PickCube",
        obs="pixels",
        image_size=32,
        steps=60,
        demo_episodes=2,
        learning_starts=30,
        batch_size=16,
        eval_every=60,
        eval_episodes=1,
        log_every=30,
        checkpoint_every=60,
        agent=SACConfig(hidden=(16,), critics=2),
        **fields,
    )


def test_auto_on_a_cpu_pretrains_the_runs_own_encoder_once_and_saves_what_it_became(tmp_path, monkeypatch):
    real_pretrain, calls = learner.pretrain.pretrain, []

    def short_pretrain(config, progress=True, stop=None):
        calls.append(config)
        return real_pretrain(replace(config, steps=30), progress, stop)

    monkeypatch.setattr(learner.pretrain, "pretrain", short_pretrain)
    config, out = pixel_config(), tmp_path / "run"
    assert config.agent.encoder == "auto"
    train(config, out, progress=False)
    model = load_encoder_model(out / "encoder.pt")
    saved = json.loads((out / "config.json").read_text())["agent"]
    assert saved["encoder"] == f"pretrained:{(out / 'encoder.pt').resolve()}"
    assert saved["encoder_hash"] == model.hash
    assert [c.data for c in calls] == [(str(out / "demos"), str(out / "explore"))]
    explore = read_manifest(out / "explore")
    assert len(explore["episodes"]) == 2 and explore["obs_spec"]["images"] == {
        "front": [32, 32, 3],
        "wrist": [32, 32, 3],
    }
    assert model.info["train_frames"] + model.info["held_out_frames"] > 2 * 2  # demos' and rollouts' frames
    assert model.info["held_out_loss_after"] < model.info["held_out_loss_before"]

    # The same command line again with --resume (auto given explicitly): no second pretraining.
    resumed = config_for_resume(replace(config, steps=90), out, {"steps", "agent.encoder"})
    summary = train(resumed, out, resume=True, progress=False)
    assert len(calls) == 1 and summary["env_steps"] >= 90
    assert json.loads((out / "config.json").read_text())["agent"]["encoder_hash"] == model.hash


def test_auto_on_a_gpu_or_a_gymnasium_env_is_the_critic_trained_conv(tmp_path):
    for config, device, demos in (
        (pixel_config(), torch.device("cuda"), tmp_path / "demos"),
        (replace(pixel_config(), env="gymnasium:Pendulum-v1"), torch.device("cpu"), None),
    ):
        concrete = with_auto_encoder(config, tmp_path, device, demos, progress=False, stop=None)
        assert concrete.agent.encoder == "conv" and concrete.agent.encoder_hash is None
    assert list(tmp_path.iterdir()) == []  # nothing recorded, nothing pretrained
