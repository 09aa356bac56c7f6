"""`realrl bench encoder`'s probes: held-out R^2 is ~1 for features that hold the target (linearly for
the ridge, as a position in the maps for SERL's head) and ~0 or below for features that do not; the
command reads a model's trunk and an untrained one."""

import json

import numpy as np
import torch

from benchmarks.encoder_probe import head_r2, held_out_r2
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


def test_the_head_probe_reads_where_a_blob_sits_in_the_maps_and_nothing_from_noise():
    # Maps (4 x 8 x 8) holding one bright cell; the target is that cell's (row, col): SERL's spatial
    # embedding reads a position off such maps, and learns nothing from maps of pure noise.
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 8, (400, 2))
    maps = torch.zeros(400, 4, 8, 8)
    maps[torch.arange(400), :, cells[:, 0], cells[:, 1]] = 1.0
    target = cells.astype(np.float64) + rng.uniform(-0.1, 0.1, cells.shape)
    train = np.arange(400) < 300
    trunk = FrameTrunk(16, 4)  # only its map shape (4, 8, 8) matters
    assert head_r2(trunk, [maps.half()], target, train) > 0.9
    assert head_r2(trunk, [torch.randn(400, 4, 8, 8).half()], target, train) < 0.2


def test_bench_encoder_reports_both_read_outs_for_the_model_and_the_baseline(tmp_path, capsys):
    model = tmp_path / "enc.pt"
    save_encoder_model(model, FrameTrunk(16, 8), ("front", "wrist"), {})
    assert main(["bench", "encoder", "--model", str(model), "--episodes", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    views = ("maps", "keypoints", "head")
    keys = {f"{who}_{view}_r2_cube" for who in ("pretrained", "random") for view in views}
    assert keys <= set(result) and result["episodes"] == 3 and result["frames"] > 30
    assert all(result[k] <= 1.0 for k in keys)
