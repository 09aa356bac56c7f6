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
