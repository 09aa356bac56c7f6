import json

import cv2
import numpy as np
import pytest

from formats.episodes import iter_episodes
from realrl.cli import build_parser, main


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_help_lists_the_verbs():
    text = build_parser().format_help()
    for verb in ("demos", "bench"):
        assert verb in text


def test_demos_record_and_info(tmp_path, capsys):
    out = tmp_path / "demos"
    sheet = tmp_path / "sheet.png"
    summary = run_json(
        capsys,
        [
            "demos",
            "record",
            "--task",
            "PickCube",
            "--episodes",
            "3",
            "--out",
            str(out),
            "--image-size",
            "48",
            "--contact-sheet",
            str(sheet),
            "--json",
        ],
    )
    assert summary["task"] == "realrl/PickCube-v0" and summary["episodes"] == 3
    assert summary["success_rate"] == 1.0
    info = run_json(capsys, ["demos", "info", str(out), "--json", "--verify"])
    assert {"task", "episodes", "success_rate", "mean_length"} <= set(info)
    episodes = list(iter_episodes(out))
    assert info["mean_length"] == pytest.approx(np.mean([len(e) for e in episodes]))
    assert info["verified_episodes"] == 3
    # Contact sheet: 3 rows of 6 cells, each cell two 48x48 cameras plus a 1 px border.
    image = cv2.imread(str(sheet))
    assert image.shape == (3 * 50, 6 * (2 * 48 + 2), 3)
    # Appending continues the seed sequence: episode 3 differs from episode 0.
    run_json(
        capsys,
        [
            "demos",
            "record",
            "--task",
            "realrl/PickCube-v0",
            "--episodes",
            "1",
            "--out",
            str(out),
            "--image-size",
            "48",
            "--json",
        ],
    )
    episodes = list(iter_episodes(out))
    assert len(episodes) == 4
    assert not np.array_equal(episodes[3].states[0], episodes[0].states[0])


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["demos", "record", "--task", "Nope", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "registered: realrl/PickCube-v0" in capsys.readouterr().err
    assert main(["demos", "info", str(tmp_path / "missing")]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main(["demos", "record", "--task", "PickCube", "--episodes", "0", "--out", str(tmp_path)]) == 2


def test_bench_sim_prints_the_contract_keys(capsys):
    result = run_json(
        capsys, ["bench", "sim", "--steps", "30", "--repeats", "1", "--image-size", "32", "--json"]
    )
    assert result["state_steps_per_s"] > 0 and result["pixels_steps_per_s"] > 0


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_train_with_a_checkpoint_and_a_final_row(tmp_path, signal_name):
    """`realrl train --actors 0` answers SIGTERM and Ctrl-C like the learner: it checkpoints where it
    is, ends metrics.jsonl with a final row of those counts and exits 0, no traceback (waits are
    upper bounds only)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--out", str(out), "--json", "--task", "PickCube"]
    command += ["--demo-episodes", "1", "--steps", "100000", "--learning-starts", "32", "--batch-size", "16"]
    command += ["--agent.hidden", "16", "--agent.critics", "2", "--log-every", "20", "--eval-every", "100000"]
    log = tmp_path / "train.log"  # a file, not a pipe: nobody reads stderr while we wait, so it must not fill
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    deadline = time.monotonic() + 240
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    process.send_signal(getattr(signal, signal_name))  # its handler is up: the loop writes rows inside it
    stdout, _ = process.communicate(timeout=240)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
    summary = json.loads(stdout.decode().splitlines()[-1])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["final"] and rows[-1]["env_steps"] == summary["env_steps"] >= 20
    assert rows[-1]["updates"] == summary["updates"]
    latest = os.readlink(out / "checkpoints" / "latest")
    assert latest == f"step_{summary['env_steps']:09d}"
    counters = json.loads((out / "checkpoints" / latest / "counters.json").read_text())
    assert (counters["env_steps"], counters["updates"]) == (summary["env_steps"], summary["updates"])
