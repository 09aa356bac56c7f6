"""Presets (learner.presets): a registry of per-family defaults looked up by the family, never by a
task's name; flags the user gave win over them; config.json records the resolved name and values,
and a --resume keeps them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from formats.config import from_dict, to_dict
from learner.configs import SACConfig, TrainConfig
from learner.presets import PRESETS, preset_name, replace_fields, with_preset
from realrl.cli import main


def test_every_preset_value_is_a_field_with_a_valid_value():
    for name, preset in PRESETS.items():
        config = with_preset(TrainConfig(preset=name))
        checked = from_dict(TrainConfig, to_dict(config))  # bounds and types, as a loaded config.json
        assert checked == config and checked.preset == name
        for key, value in preset.values.items():
            head, _, rest = key.partition(".")
            assert getattr(getattr(config, head), rest) == value if rest else getattr(config, key) == value


def test_auto_picks_the_family_from_where_the_env_comes_from():
    assert preset_name(TrainConfig()) == "robot"
    assert preset_name(TrainConfig(task="PegInsert")) == "robot"
    assert preset_name(TrainConfig(env="gymnasium:Hopper-v5")) == "control"
    assert preset_name(TrainConfig(env="gymnasium:Hopper-v5", preset="robot")) == "robot"
    assert with_preset(TrainConfig()) == replace(TrainConfig(), preset="robot")  # robot: the defaults


def test_the_control_preset_is_the_sac_papers_and_given_flags_win():
    control = with_preset(TrainConfig(env="gymnasium:Hopper-v5"))
    assert (control.n_step, control.learning_starts, control.eval_episodes) == (1, 5000, 10)
    a = control.agent
    assert (a.critics, a.critic_subsample, a.critic_layer_norm) == (2, 2, False)
    assert (a.init_temperature, a.target_entropy_per_dim, a.normalize_state) == (1.0, 1.0, False)
    given = TrainConfig(env="gymnasium:Hopper-v5", n_step=3, agent=SACConfig(critics=10))
    mixed = with_preset(given, given={"n_step", "agent.critics"})
    assert (mixed.n_step, mixed.agent.critics, mixed.agent.critic_layer_norm) == (3, 10, False)


def test_replace_fields_names_an_unknown_field():
    with pytest.raises(ValueError, match="no field 'agent.nope'|no field 'nope'"):
        replace_fields(TrainConfig(), {"agent.nope": 1})


def test_the_command_line_saves_the_resolved_preset_and_a_resume_keeps_it(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--env", "gymnasium:Pendulum-v1", "--steps", "40", "--learning-starts", "20",
            "--eval-every", "40", "--eval-episodes", "1", "--agent.hidden", "16",
            "--out", str(out), "--json"]  # fmt: skip
    assert main([*argv, "--agent.critics", "3"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "control" and saved["n_step"] == 1 and saved["agent"]["init_temperature"] == 1.0
    assert saved["agent"]["critics"] == 3 and saved["learning_starts"] == 20  # given: not the preset's
    capsys.readouterr()
    # A resume with more steps keeps the saved (preset) values; another preset is refused.
    assert main(["train", "--out", str(out), "--resume", "--steps", "60", "--json"]) == 0
    resumed = json.loads((out / "config.json").read_text())
    assert resumed == {**saved, "steps": 60}
    assert main(["train", "--out", str(out), "--resume", "--preset", "robot"]) == 2
    assert "--resume cannot change --preset (saved 'control', given 'robot')" in capsys.readouterr().err
