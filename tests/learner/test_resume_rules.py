"""A run directory's rules: one process holds it for the whole run (a second learner is refused,
naming the first's PID), and --resume continues the run the directory holds: never a fresh run in
its place, the saved config but for the flags given again (checked, logged, saved), and metrics
rows that never go back."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from test_loop import read_rows, tiny_config

from learner.configs import TrainConfig
from realrl.cli import main
from realrl.commands.train import build_loop


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 60-step run (checkpoint at 60, evals every 100), built as `realrl train` builds it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    build_loop(tiny_config(60), out, progress=False).run()
    return out


@pytest.fixture
def run_dir(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    return out


def realrl(monkeypatch, capsys, *argv: str) -> tuple[int, dict | None, str]:
    """`realrl ARGV` in this process: exit status, the --json summary (if printed) and stderr."""
    monkeypatch.setattr(sys, "argv", ["realrl", *argv])  # what main() parses when the shell runs it
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else None, captured.err


def saved(out) -> dict:
    return json.loads((out / "config.json").read_text())


# -- one process per run directory ----------------------------------------------------------------
def test_a_second_build_on_a_live_run_directory_is_refused_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    first = build_loop(tiny_config(60), out, progress=False)
    config_before = (out / "config.json").read_text()
    for resume in (True, False):
        with pytest.raises(ValueError, match=f"in use by another process \\(PID {os.getpid()}\\)"):
            build_loop(replace(tiny_config(60), batch_size=16), out, resume=resume, progress=False)
    assert (out / "config.json").read_text() == config_before  # the refused one wrote nothing
    first.run()  # the run ends: the directory is free again
    resumed = build_loop(tiny_config(60), out, resume=True, progress=False)
    assert resumed.env_steps == 60
    resumed.close()


@pytest.mark.timeout(300)
def test_a_second_learner_process_on_a_live_run_is_refused(tmp_path, monkeypatch, capsys):
    """The report: `realrl learner --resume` on the directory of a live run ran alongside it."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--out", str(out), "--json", "--task", "PickCube"]
    command += ["--demo-episodes", "1", "--steps", "100000", "--learning-starts", "32", "--batch-size", "16"]
    command += ["--agent.hidden", "16", "--agent.critics", "2", "--log-every", "20", "--eval-every", "100000"]
    log = tmp_path / "train.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        deadline = time.monotonic() + 240
        while not (out / "metrics.jsonl").exists() or not read_rows(out):  # until it is training
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        code, _, err = realrl(monkeypatch, capsys, "learner", "--out", str(out), "--resume", "--bind",
                              "tcp://127.0.0.1:0", "--json")  # fmt: skip
        assert code == 2 and f"PID {process.pid}" in err, err
        assert process.poll() is None  # the live run goes on
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=240)
    assert process.returncode == 0, log.read_text()[-2000:]


# -- --resume needs a run, and never logs from step 0 again --------------------------------------
def test_resume_on_a_missing_or_empty_directory_is_an_error(tmp_path):
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    for out in (missing, empty):
        with pytest.raises(ValueError, match=f"--resume: {out} holds no checkpoint"):
            build_loop(tiny_config(60), out, resume=True, progress=False)
    assert not missing.exists() and list(empty.iterdir()) == []


def test_resume_without_a_checkpoint_does_not_start_over(run_dir):
    """A run that died before its first checkpoint (here: its checkpoints taken away) logged rows
    that a run started over would log again from step 0."""
    shutil.rmtree(run_dir / "checkpoints")
    rows_before, config_before = (run_dir / "metrics.jsonl").read_text(), saved(run_dir)
    with pytest.raises(ValueError, match="holds no checkpoint .*stopped before its first one"):
        build_loop(replace(tiny_config(60), eval_every=40), run_dir, resume=True, progress=False)
    assert (run_dir / "metrics.jsonl").read_text() == rows_before
    assert saved(run_dir) == config_before  # a refused resume changes nothing


def test_a_run_stopped_while_it_records_its_demos_is_set_up_again_on_resume(tmp_path):
    """A stop request before the first step (here during the demo recording) leaves no checkpoint
    and no row: a --resume tops the demos up and starts from step 0 (a checkpoint of the short demo
    buffer would not fit the topped-up one)."""
    from formats.episodes import read_manifest

    out, stop = tmp_path / "run", threading.Event()
    stop.set()  # the recording finishes the episode under way, then stops
    config = replace(tiny_config(60), demo_episodes=3)
    summary = build_loop(config, out, progress=False, stop=stop).run(stop)
    assert summary["env_steps"] == 0 and not (out / "checkpoints").exists()
    assert len(read_manifest(out / "demos")["episodes"]) == 1
    summary = build_loop(config, out, resume=True, progress=False).run()
    assert summary["env_steps"] == 60 and len(read_manifest(out / "demos")["episodes"]) == 3


def test_a_run_resumes_only_with_the_kind_of_source_that_fed_it(run_dir):
    """A run of the in-process actor resumed by a learner (or the reverse) would restore the wrong
    state, or leave a learner's journal unread."""
    from learner.configs import ServerConfig

    with pytest.raises(ValueError, match="fed by the in-process actor .* not with actor processes"):
        build_loop(tiny_config(60), run_dir, server=ServerConfig(), resume=True, progress=False)


def test_a_config_saved_before_a_field_existed_still_resumes(run_dir):
    config = saved(run_dir)
    del config["agent"]["critic_impl"], config["critic_actor_ratio"]  # fields added later
    (run_dir / "config.json").write_text(json.dumps(config))
    summary = build_loop(tiny_config(60), run_dir, resume=True, progress=False).run()
    assert summary["env_steps"] == 60


def test_metrics_rows_never_go_back(tmp_path):
    from learner.metrics import MetricsWriter

    metrics = MetricsWriter(tmp_path)
    metrics.write({"env_steps": 100, "updates": 50, "wall_s": 1.0})
    with pytest.raises(RuntimeError, match="rows never go back"):
        metrics.write({"env_steps": 0, "updates": 0, "wall_s": 0.0})
    metrics.close()
    assert [r["env_steps"] for r in read_rows(tmp_path)] == [100]


def test_a_resumed_run_drops_the_final_row_of_its_stop(tmp_path):
    """A stop writes a final row with the checkpoint's counts; resumed from that checkpoint, the run
    goes on and writes its own final row, so the old one goes (and rows after the checkpoint), when
    the resumed run writes its first row: a run only opened (to inspect it) keeps its file."""
    from learner.metrics import MetricsWriter

    metrics = MetricsWriter(tmp_path)
    for env_steps, final in ((100, {}), (200, {}), (200, {"final": True}), (250, {})):
        metrics.write({"env_steps": env_steps, "updates": 0, "wall_s": 0.0, **final})
    metrics.close()
    MetricsWriter(tmp_path, resume_at=200).close()  # built, not run (a tool inspecting the run)
    assert len(read_rows(tmp_path)) == 4  # the file untouched
    resumed = MetricsWriter(tmp_path, resume_at=200)
    resumed.write({"env_steps": 230, "updates": 0, "wall_s": 0.0})
    resumed.close()
    rows = [(r["env_steps"], r.get("final")) for r in read_rows(tmp_path)]
    assert rows == [(100, None), (200, None), (230, None)]


# -- the saved config, but for the flags given again ----------------------------------------------
def test_the_flags_a_command_line_gives():
    from realrl.commands.train import given_fields

    argv = ["train", "--out", "x", "--steps", "5", "--agent.actor-lr", "1e-3", "--resume"]
    argv += ["--no-agent.critic-layer-norm", "--agent.hidden", "64", "64", "--json"]
    assert given_fields(TrainConfig, argv) == {
        "steps",
        "agent.actor_lr",
        "agent.critic_layer_norm",
        "agent.hidden",
    }
    assert given_fields(TrainConfig, ["learner", "--out", "x", "--bind", "tcp://*:5555"]) == set()


def test_resume_without_steps_keeps_the_saved_total(run_dir, monkeypatch, capsys):
    """A finished 60-step run resumed without --steps stays at 60 (it trained on to the default 20000
    and saved that)."""
    before = saved(run_dir)
    code, summary, err = realrl(monkeypatch, capsys, "train", "--out", str(run_dir), "--resume", "--json")
    assert code == 0, err
    assert summary["env_steps"] == 60 and saved(run_dir) == before
    steps = [r["env_steps"] for r in read_rows(run_dir)]
    assert steps == sorted(steps) and steps[-1] == 60


def test_flags_given_again_replace_their_saved_values_and_are_saved(run_dir, monkeypatch, capsys, caplog):
    caplog.set_level(logging.INFO, logger="learner.loop")
    code, summary, err = realrl(monkeypatch, capsys, "train", "--out", str(run_dir), "--resume", "--json",
                                "--steps", "120", "--eval-every", "40")  # fmt: skip
    assert code == 0, err
    assert summary["env_steps"] == 120  # --steps extends the run
    rows = read_rows(run_dir)
    assert [r["env_steps"] for r in rows if "eval_return" in r] == [60, 80, 120]  # evals every 40 now
    config = saved(run_dir)
    assert (config["steps"], config["eval_every"]) == (120, 40)
    assert config["batch_size"] == 32 and config["agent"]["hidden"] == [32, 32]  # the rest: as saved
    (line,) = [r.getMessage() for r in caplog.records if "over the saved config" in r.getMessage()]
    assert "--eval-every 40 (saved 100)" in line and "--steps 120 (saved 60)" in line


def test_a_bad_saved_value_is_fixed_by_giving_its_flag_again(run_dir, monkeypatch, capsys):
    config = saved(run_dir)
    config["keep_checkpoints"] = 0  # saved by hand, or by an older version that did not check it
    (run_dir / "config.json").write_text(json.dumps(config))
    code, _, err = realrl(monkeypatch, capsys, "train", "--out", str(run_dir), "--resume", "--json")
    assert code == 2 and "keep" in err and "checkpoints" in err
    code, summary, err = realrl(monkeypatch, capsys, "train", "--out", str(run_dir), "--resume", "--json",
                                "--keep-checkpoints", "3")  # fmt: skip
    assert code == 0, err
    assert summary["env_steps"] == 60 and saved(run_dir)["keep_checkpoints"] == 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keep-checkpoints", "0"], "keep.checkpoints"),
        (
            ["--agent.hidden", "64", "64"],
            r"cannot change --agent.hidden \(saved \[32, 32\], given \[64, 64\]\)",
        ),
        (["--task", "PegInsert"], "cannot change --task"),
        (["--steps", "30"], "--steps 30 is below the 60 env steps"),
    ],
    ids=["out-of-range", "network-shape", "task", "steps-below-done"],
)
def test_a_value_given_again_that_cannot_apply_is_refused(run_dir, monkeypatch, capsys, flags, message):
    before = (run_dir / "config.json").read_text()
    rows_before = (run_dir / "metrics.jsonl").read_text()
    code, _, err = realrl(monkeypatch, capsys, "train", "--out", str(run_dir), "--resume", "--json", *flags)
    assert code == 2
    assert re.search(message, err), err
    assert (run_dir / "config.json").read_text() == before
    assert (run_dir / "metrics.jsonl").read_text() == rows_before
