"""Demo directories checked against what uses them: a run refuses demos of another task or other
observations (naming both), `demos info --verify` checks every file against the manifest and the
manifest against its task, a run's own demos are topped up with exactly the missing episodes on new
seeds, and `demos record` stops at an episode boundary on SIGINT/SIGTERM."""

import hashlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from actors.demos import record_scripted
from formats.config import save_config
from formats.episodes import EpisodeFormatError, iter_episodes, read_manifest
from learner.configs import SACConfig, TrainConfig
from realrl.cli import main
from realrl.commands.train import build_loop

TINY = TrainConfig(
    task="PickCube",
    steps=60,
    demo_episodes=2,
    learning_starts=50,
    batch_size=32,
    buffer_capacity=2000,
    eval_episodes=1,
    agent=SACConfig(hidden=(32, 32), critics=2),
)


@pytest.fixture(scope="module")
def pick_demos(tmp_path_factory) -> Path:
    """Two PickCube state demos."""
    directory = tmp_path_factory.mktemp("demos") / "pick"
    record_scripted("PickCube", 2, directory, obs_mode="state", progress=False)
    return directory


def copy_of(directory: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(directory, tmp_path / directory.name))


def edit_manifest(directory: Path, edit) -> None:
    manifest = read_manifest(directory)
    edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


# -- a run takes only demos of its task and observations -------------------------------------------
def test_a_run_refuses_demos_of_another_task_naming_both(pick_demos, tmp_path):
    """The report: demos whose manifest says PegInsert trained a PickCube run (same shapes)."""
    demos = copy_of(pick_demos, tmp_path)
    edit_manifest(demos, lambda m: m.update(task="realrl/PegInsert-v0"))
    out = tmp_path / "run"
    with pytest.raises(
        EpisodeFormatError, match="demos of realrl/PegInsert-v0, but this run's task is realrl/PickCube-v0"
    ):
        build_loop(replace(TINY, demos=str(demos)), out, progress=False)
    assert not (out / "metrics.jsonl").exists()  # refused before anything trained


def test_a_run_refuses_demos_with_other_observations_naming_both(pick_demos, tmp_path):
    config = replace(TINY, obs="pixels", image_size=16, demos=str(pick_demos))
    with pytest.raises(
        EpisodeFormatError,
        match=r"\(state: obs spec .*\) differ from this run's .*: state dim \[14\] vs \[7\]",
    ):
        build_loop(config, tmp_path / "run", progress=False)


# -- demos info --verify --------------------------------------------------------------------------
def verify(capsys, directory: Path) -> tuple[int, str]:
    code = main(["demos", "info", str(directory), "--verify", "--json"])
    return code, capsys.readouterr().err


def test_verify_passes_a_sound_directory(pick_demos, capsys):
    assert main(["demos", "info", str(pick_demos), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified_episodes"] == 2


def test_verify_names_a_file_whose_shapes_differ_from_the_manifest(pick_demos, tmp_path, capsys):
    """A file with a 15-dim state listed (checksum and length right) in a 14-dim directory."""
    demos = copy_of(pick_demos, tmp_path)
    path = demos / "episode_000001.npz"
    with np.load(path) as data:
        arrays = dict(data)
    arrays["state"] = np.concatenate([arrays["state"], arrays["state"][:, :1]], axis=1)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    edit_manifest(demos, lambda m: m["episodes"][1].update(sha256=digest))
    code, err = verify(capsys, demos)
    assert code == 2
    assert "episode_000001.npz" in err and "file vs manifest: state dim [15] vs [14]" in err, err


def test_verify_names_a_manifest_whose_task_does_not_observe_what_its_files_hold(
    pick_demos, tmp_path, capsys
):
    demos = copy_of(pick_demos, tmp_path)
    edit_manifest(demos, lambda m: m.update(task="realrl/PegInsert-v0"))  # PegInsert's state has 17 dims
    code, err = verify(capsys, demos)
    assert code == 2
    assert "what its task realrl/PegInsert-v0 (state) observes" in err and "state dim [14] vs [17]" in err, (
        err
    )


# -- a run's own demos: exactly the missing ones, on new seeds --------------------------------------
def test_a_run_stopped_while_recording_its_demos_records_only_the_missing_ones(tmp_path):
    """The report: a crash during the run's own demo recording, then --resume: 5 demos instead of 3."""
    out = tmp_path / "run"
    out.mkdir()
    config = replace(TINY, task="realrl/PickCube-v0", demo_episodes=3)
    save_config(config, out / "config.json")  # what the run had written when it died after 2 of 3 demos
    kwargs = dict(seed=10_000, obs_mode="state", successes_only=True, progress=False)
    record_scripted(config.task, 2, out / "demos", **kwargs)
    loop = build_loop(config, out, resume=True, progress=False)
    episodes = read_manifest(out / "demos")["episodes"]
    assert len(episodes) == 3
    assert len(loop.replay.demo) == sum(e["length"] for e in episodes)
    seeds = [e["seed"] for e in episodes]
    assert seeds[:2] == [10_000, 10_001] and seeds[2] > 10_001  # a new seed, not a repeat
    loop.close()


def test_appending_never_repeats_a_seed_after_a_dropped_failure(tmp_path):
    """Successes-only drops failed rollouts, so a directory's seeds can have holes (0, 1, 2, 4 when
    seed 3 failed): an append goes on after the highest (5), not at 0 + 4 episodes (4, a repeat)."""
    demos = tmp_path / "demos"
    kwargs = dict(seed=0, obs_mode="state", progress=False)
    record_scripted("PickCube", 4, demos, **kwargs)
    edit_manifest(demos, lambda m: m["episodes"][3].update(seed=4))  # as if seed 3 had failed
    record_scripted("PickCube", 1, demos, **kwargs)
    assert [e["seed"] for e in read_manifest(demos)["episodes"]] == [0, 1, 2, 4, 5]


# -- demos record stops at an episode boundary ------------------------------------------------------
class StopAfter:
    """A stop request that arrives during episode `n` (record_scripted asks once per episode)."""

    def __init__(self, n: int) -> None:
        self.asked, self.n = 0, n

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked >= self.n


def test_record_stops_after_the_episode_under_way(tmp_path):
    summary = record_scripted("PickCube", 50, tmp_path, obs_mode="state", progress=False, stop=StopAfter(2))
    assert (summary["episodes"], summary["recorded"], summary["stopped"]) == (2, 2, True)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["episode_000000.npz", "episode_000001.npz"]
    assert len(list(iter_episodes(tmp_path))) == 2


@pytest.mark.timeout(300)
def test_sigterm_stops_demos_record_with_its_files_and_summary(tmp_path):
    out = tmp_path / "demos"
    command = [sys.executable, "-m", "realrl.cli", "demos", "record", "--task", "PickCube", "--obs", "state"]
    command += ["--episodes", "100000", "--out", str(out), "--json"]
    log = tmp_path / "record.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    deadline = time.monotonic() + 240
    while not (out / "manifest.json").exists():  # an episode is written: its handler is up
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=240)
    assert process.returncode == 0, log.read_text()[-2000:]
    summary = json.loads(stdout.decode().splitlines()[-1])
    files = sorted(out.glob("episode_*.npz"))
    assert summary["stopped"] and summary["episodes"] == summary["recorded"] == len(files) >= 1
    assert [e["file"] for e in read_manifest(out)["episodes"]] == [p.name for p in files]
    assert len(list(iter_episodes(out))) == len(files)  # every file whole and listed
