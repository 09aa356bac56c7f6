"""Fail fast, one line: a bad flag value is one line on stderr naming the flag, exit status 2, before
anything is created on disk (the run directory, demos, a spool, keys)."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from realrl.cli import main

pytestmark = pytest.mark.timeout(120)  # the old code started a learner that waited for actors forever

# Cheap settings, so that a command which wrongly starts (old code) finishes soon instead of training.
TRAIN = ["train", "--out", "run", "--demo-episodes", "1", "--eval-episodes", "1", "--steps", "50"]
TRAIN += ["--learning-starts", "8", "--agent.hidden", "8", "--agent.critics", "2"]
LEARNER = ["learner", "--out", "run", "--demo-episodes", "1", "--steps", "50"]
ACTOR = ["actor", "--task", "PickCube", "--max-steps", "5", "--learner", "tcp://127.0.0.1:9"]
ACTOR += ["--spool", "spool"]
RECORD = ["demos", "record", "--task", "PickCube", "--episodes", "1", "--out", "demos", "--obs", "state"]
SHEET = ["demos", "sheet", "keys", "--out", "sheet.png"]

CASES = [  # (command, bad flags, what the error line names)
    (TRAIN, ["--steps", "-5"], "--steps"),
    (TRAIN, ["--steps", "0"], "--steps"),
    (TRAIN, ["--steps"], "--steps"),  # no value
    (TRAIN, ["--batch-size", "0"], "--batch-size"),
    (TRAIN, ["--image-size", "0"], "--image-size"),
    (TRAIN, ["--obs", "foo"], "--obs"),
    (TRAIN, ["--out", "a-file"], "--out"),
    (TRAIN, ["--out", "a-file/run"], "--out"),
    (TRAIN, ["--agent.gamma", "1.5"], "--agent.gamma"),
    (TRAIN, ["--demos", "no-such-demos"], "--demos"),
    (LEARNER, ["--allow-keys", "keys"], "--allow-keys"),  # without --curve-secret
    (LEARNER, ["--curve-secret", "missing.key_secret", "--allow-keys", "keys"], "--curve-secret"),
    (LEARNER, ["--out", "a-file"], "--out"),
    (LEARNER, ["--bind", "notaurl"], "--bind"),
    (ACTOR, ["--learner", "notaurl"], "--learner"),
    (ACTOR, ["--curve-secret", "actor.key_secret", "--learner-key", "missing.key"], "--learner-key"),
    (ACTOR, ["--curve-secret", "actor.key_secret"], "--learner-key"),  # one key of the pair
    (ACTOR, ["--image-size", "4"], "--image-size"),
    (ACTOR, ["--heartbeat-s", "0"], "--heartbeat-s"),
    (RECORD, ["--episodes", "0"], "--episodes"),
    (RECORD, ["--image-size", "0"], "--image-size"),
    (RECORD, ["--out", "a-file"], "--out"),
    (RECORD, ["--noise", "-1"], "--noise"),
    (RECORD, ["--source", "teleop"], "--source"),
    (SHEET, ["--episodes", "0"], "--episodes"),
    (["bench", "sim"], ["--repeats", "0"], "--repeats"),
    (["keys", "generate", "a-file"], ["--name", "robot-1"], "DIRECTORY"),  # a file, not a directory
    (["demos"], ["frobnicate"], "frobnicate"),
]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty-ish working directory and home (the actor's default spool lives under ~)."""
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "keys").mkdir()
    (tmp_path / "actor.key_secret").write_text("not checked at parse time")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("command, bad, flag", CASES, ids=[f"{c[0]} {' '.join(b)}" for c, b, _ in CASES])
def test_a_bad_flag_is_one_line_exit_2_and_nothing_on_disk(command, bad, flag, workdir, capsys):
    before = tree(workdir)
    code = main(command + bad)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"realrl {command[0]}") and ": error: " in lines[0] and flag in lines[0], err
    assert tree(workdir) == before


def test_the_console_command_prints_one_line_too(tmp_path):
    """The real entry point, not main(): argparse's usage dump is gone there as well."""
    command = [sys.executable, "-m", "realrl.cli", "train", "--out", str(tmp_path / "run"), "--obs", "foo"]
    repo = Path(__file__).parents[2]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=repo)
    assert result.returncode == 2
    assert result.stderr == (
        "realrl train: error: argument --obs: invalid choice: 'foo' (choose from state, pixels)\n"
    )
    assert result.stdout == "" and not (tmp_path / "run").exists()


def test_help_still_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 20000; >= 1)" in out and "(default: 128; >= 16, <= 480)" in out


def test_every_config_default_is_inside_its_bounds():
    """The bounds accept what the code ships with (and what a saved config.json holds)."""
    from actors import config as actor
    from benchmarks import configs as bench
    from formats.config import from_dict, to_dict
    from learner.configs import ServerConfig, TrainConfig

    configs = [actor.ActorConfig(), actor.TransportConfig(), TrainConfig(), ServerConfig()]
    configs += [bench.BenchSimConfig(), bench.BenchLearnerConfig(), bench.BenchTransportConfig()]
    configs += [bench.BenchLeRobotConfig(), actor.DemoRecordConfig("PickCube", 1, "out")]
    configs += [actor.DemoInfoConfig("d"), actor.DemoSheetConfig("d", "s.png")]
    for config in configs:
        assert from_dict(type(config), to_dict(config)) == config


def test_image_size_bounds_agree_everywhere():
    """actors may not import the learner, so actors.config keeps its own copy of the numbers."""
    from actors import config as actor
    from benchmarks import configs as bench
    from learner.configs import IMAGE_SIZE, TrainConfig

    assert actor.IMAGE_SIZE == IMAGE_SIZE
    classes = [actor.ActorConfig, actor.DemoRecordConfig, TrainConfig]
    classes += [bench.BenchSimConfig, bench.BenchTransportConfig, bench.LearnerShapes]
    for cls in classes:
        image_size = {f.name: f for f in dataclasses.fields(cls)}["image_size"]
        assert dict(image_size.metadata) == IMAGE_SIZE, cls
