"""How well a frozen encoder's trunk sees the objects: privileged sim state used only to evaluate an
encoder, never to train one. Rolls out the twin's scripted expert with action noise, keeps each
frame and the objects' true positions, and fits ridge regressions from the trunk's output to those
positions on two thirds of the episodes; reports R^2 on the rest, per object, for the model and for
an untrained trunk of the same shape (the baseline). Three read-outs: SERL's head trained on the
maps (what a run trains on them), a ridge regression on the raw maps (16k numbers per frame from a
few hundred frames: it overfits, a lower bound) and one on the spatial-softmax keypoints (what the
pretraining shapes)."""

from __future__ import annotations

import numpy as np
import torch

from envs import make_env
from learner.pretrain import spatial_softmax_points
from policies.encoder_files import load_encoder_model
from policies.encoders import FrameTrunk, FrozenEncoder, to_float_nchw

RIDGE = 1e-2  # per feature, after standardising: the dual solve stays well conditioned
# Full-batch Adam steps of the head probe: on PickCube's pretrained model its held-out R^2 for the
# cube was 0.64, 0.79 and 0.83 after 100, 300 and 1000 steps; an untrained trunk's 0.60, 0.60, 0.61.
HEAD_STEPS = 1000
HEAD_WEIGHT_DECAY = 1e-4


def rollouts(task: str, image_size: int, episodes: int, noise: float, seed: int):
    """Frames {camera: uint8 (N, H, W, 3)}, object positions {name: (N, 3)}, episode index (N,)."""
    env = make_env(task, obs_mode="pixels", image_size=image_size)
    robot = env.unwrapped.robot
    frames, positions, index = {}, {}, []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        expert = env.unwrapped.scripted_expert(noise=noise, seed=seed + episode)
        done = False
        while not done:
            for camera, frame in obs["images"].items():
                frames.setdefault(camera, []).append(frame)
            for name, pose in robot.get_object_poses().items():
                positions.setdefault(name, []).append(pose.pos)
            index.append(episode)
            obs, _, terminated, truncated, _ = env.step(expert())
            done = terminated or truncated
    env.close()
    stack = {k: np.stack(v) for k, v in frames.items()}
    return stack, {k: np.stack(v) for k, v in positions.items()}, np.asarray(index)


@torch.no_grad()
def read_outs(trunk: FrameTrunk, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per frame, all cameras side by side: the flattened maps and the keypoints."""
    maps, points, per_camera = [], [], []
    for camera in sorted(frames):
        out = torch.cat(
            [trunk(to_float_nchw(torch.from_numpy(c))) for c in np.array_split(frames[camera], 8)]
        )
        per_camera.append(out.half())  # as the replay caches them
        maps.append(out.flatten(1).numpy())
        points.append(spatial_softmax_points(out, torch.tensor(0.5)).numpy())
    return {
        "maps": np.concatenate(maps, 1),
        "keypoints": np.concatenate(points, 1),
        "maps_per_camera": per_camera,
    }


def held_out_r2(features: np.ndarray, target: np.ndarray, train: np.ndarray) -> float:
    """Mean over the target's columns of R^2 on the rows not in `train`, ridge in its dual form."""
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    x = (features - mean) / std
    y_mean = target[train].mean(0)
    gram = x[train] @ x[train].T + RIDGE * x.shape[1] * np.eye(int(train.sum()))
    weights = x[train].T @ np.linalg.solve(gram, target[train] - y_mean)
    predicted, actual = x[~train] @ weights + y_mean, target[~train]
    r2 = 1 - ((predicted - actual) ** 2).sum(0) / ((actual - actual.mean(0)) ** 2).sum(0)
    return float(r2.mean())


def head_r2(
    trunk: FrameTrunk,
    maps: list[torch.Tensor],
    target: np.ndarray,
    train: np.ndarray,
    steps: int = HEAD_STEPS,
) -> float:
    """Held-out R^2 of SERL's head (the one a run trains on the cached maps: per camera spatial
    embedding -> 256 -> LayerNorm -> tanh) plus a linear layer, fitted by Adam to the standardised
    target on the `train` rows; `maps` per camera (N, C, h, w)."""
    torch.manual_seed(0)
    heads = FrozenEncoder(trunk, trunk.image_size, len(maps))
    read_out = torch.nn.Linear(len(maps) * heads.feature_dim, target.shape[1])
    mean, std = target[train].mean(0), target[train].std(0) + 1e-9
    y = torch.from_numpy((target - mean) / std).float()
    rows = torch.from_numpy(train)
    params = [*heads.heads.parameters(), *read_out.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=HEAD_WEIGHT_DECAY)
    for _ in range(steps):
        loss = ((read_out(heads.head_features([m[rows] for m in maps])) - y[rows]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = read_out(heads.head_features([m[~rows] for m in maps])).numpy() * std + mean
    actual = target[~train]
    return float((1 - ((predicted - actual) ** 2).sum(0) / ((actual - actual.mean(0)) ** 2).sum(0)).mean())


def run(
    model: str, task: str = "PickCube", episodes: int = 30, noise: float = 0.3, seed: int = 50_000
) -> dict:
    encoder = load_encoder_model(model)
    frames, positions, index = rollouts(task, encoder.image_size, episodes, noise, seed)
    encoder.check_fits(tuple(frames), encoder.image_size)
    torch.manual_seed(0)
    baseline = FrameTrunk(encoder.image_size, encoder.trunk.channels)
    train = index < round(episodes * 2 / 3)
    result = {"task": task, "model": model, "hash": encoder.hash, "frames": len(index), "episodes": episodes}
    for label, trunk in (("pretrained", encoder.trunk.eval()), ("random", baseline.eval())):
        views = read_outs(trunk, frames)
        maps = views.pop("maps_per_camera")
        for name, target in positions.items():
            for view, features in views.items():
                result[f"{label}_{view}_r2_{name}"] = round(held_out_r2(features, target, train), 3)
            result[f"{label}_head_r2_{name}"] = round(head_r2(trunk, maps, target, train), 3)
    return result
