"""`realrl bench encoder`'s probe: held-out R^2 is ~1 for features that hold the target linearly and
~0 or below for features that do not; the command reads a model's trunk and an untrained one."""

import json

import numpy as np

from benchmarks.encoder_probe import held_out_r2
from policies.encoder_files import save_encoder_model
from policies.encoders import FrameTrunk
from realrl.cli import main


def test_held_out_r2_separates_informative_from_uninformative_features():
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (300, 3))
    train = np.arange(300) < 200
    mixed = target @ rng.standard_normal((3, 40)) + 0.01 * rng.standard_normal((300, 40))
    assert held_out_r2(mixed, target, train) > 0.99
    assert held_out_r2(rng.standard_normal((300, 40)), target, train) < 0.1


def test_bench_encoder_reports_both_read_outs_for_the_model_and_the_baseline(tmp_path, capsys):
    model = tmp_path / "enc.pt"
    save_encoder_model(model, FrameTrunk(16, 8), ("front", "wrist"), {})
    assert main(["bench", "encoder", "--model", str(model), "--episodes", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    keys = {f"{who}_{view}_r2_cube" for who in ("pretrained", "random") for view in ("maps", "keypoints")}
    assert keys <= set(result) and result["episodes"] == 3 and result["frames"] > 30
    assert all(result[k] <= 1.0 for k in keys)
