"""Self-supervised pretraining of a frozen encoder's trunk on a task's own camera frames (demos and
exploration; no labels a real robot would not have): a deep spatial autoencoder (Finn et al.,
2016). The trunk's last maps go through a spatial softmax to one expected image point per channel,
and one linear layer per camera must rebuild a downsampled frame from those points alone. Only
things that move within a camera's view (the arm, the cube, the peg) change the frame, so the points
learn to sit on them: the trunk's maps become object detectors. `realrl encoder pretrain` runs this
and writes a model file (policies.encoder_files); `--steps 0` writes the untrained trunk, the
random-weight baseline."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from formats.episodes import iter_episodes, read_manifest
from formats.progress import progress_bar
from learner.configs import PretrainConfig
from policies.encoder_files import save_encoder_model
from policies.encoders import FrameTrunk, to_float_nchw


# -- the objective ----------------------------------------------------------------------------------
def spatial_softmax_points(maps: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, 2C): per channel, the softmax-weighted mean (x, y) over the grid, in [-1, 1].
    Each map is standardised over its grid first, so the softmax is as peaked for an untrained trunk
    (whose maps are nearly flat) as for a trained one: the points start on the strongest responses
    and get gradients from the first step, instead of sitting at the centre."""
    n, c, h, w = maps.shape
    flat = maps.reshape(n, c, h * w)
    flat = (flat - flat.mean(-1, keepdim=True)) / (flat.std(-1, keepdim=True) + 1e-5)
    weights = torch.softmax(flat / temperature, dim=-1).reshape(n, c, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=maps.device, dtype=maps.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=maps.device, dtype=maps.dtype)
    x = (weights.sum(dim=2) * xs).sum(dim=-1)  # (N, C)
    y = (weights.sum(dim=3) * ys).sum(dim=-1)
    return torch.cat([x, y], dim=1)


def reconstruction_target(frames: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> the frame averaged down to (N, 3, size, size)."""
    return F.adaptive_avg_pool2d(frames, size)


def gaussian_maps(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(N, 2C) points in [-1, 1] -> (N, C, size, size): a Gaussian blob of std `sigma` (in [-1, 1]
    units) at each point, so a decoder can draw what sits there wherever it sits."""
    n, c2 = points.shape
    x, y = points[:, : c2 // 2, None, None], points[:, c2 // 2 :, None, None]
    grid = torch.linspace(-1.0, 1.0, size, device=points.device, dtype=points.dtype)
    blob_x = torch.exp(-((grid.view(1, 1, 1, size) - x) ** 2) / (2 * sigma**2))
    blob_y = torch.exp(-((grid.view(1, 1, size, 1) - y) ** 2) / (2 * sigma**2))
    return blob_x * blob_y


class SpatialAutoencoder(nn.Module):
    """The trunk, a learned softmax temperature, and per camera a decoder that draws the frame from
    the points alone: a learned background plus a conv over one Gaussian blob per point (a linear
    layer on the coordinates, Finn et al.'s decoder, cannot draw an object anywhere in the view)."""

    def __init__(self, trunk: FrameTrunk, cameras: tuple[str, ...], reconstruct: int) -> None:
        super().__init__()
        self.trunk, self.cameras, self.reconstruct = trunk, cameras, reconstruct
        self.log_temperature = nn.Parameter(torch.log(torch.tensor(0.5)))
        self.sigma = 2.0 / reconstruct  # one cell of the rebuilt frame
        c = trunk.channels
        self.decoders = nn.ModuleDict({k: nn.Conv2d(c, 3, 5, padding=2) for k in cameras})
        self.backgrounds = nn.ParameterDict(
            {k: nn.Parameter(torch.full((1, 3, reconstruct, reconstruct), 0.5)) for k in cameras}
        )

    def loss(self, frames: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared reconstruction error over every camera's frames (uint8 (N, H, W, 3))."""
        losses = []
        for camera in self.cameras:
            images = to_float_nchw(frames[camera])
            points = spatial_softmax_points(self.trunk(images), self.log_temperature.exp())
            blobs = gaussian_maps(points, self.reconstruct, self.sigma)
            rebuilt = self.backgrounds[camera] + self.decoders[camera](blobs)
            losses.append(F.mse_loss(rebuilt, reconstruction_target(images, self.reconstruct)))
        return torch.stack(losses).mean()


# -- data -----------------------------------------------------------------------------------------
@dataclass
class Frames:
    """Every camera frame of some episode directories, uint8 {camera: (N, H, W, 3)}, split by episode
    into a training and a held-out part."""

    train: dict[str, torch.Tensor]
    held_out: dict[str, torch.Tensor]
    cameras: tuple[str, ...]
    image_size: int
    episodes: int


def load_frames(directories: tuple[str, ...], held_out_fraction: float, seed: int) -> Frames:
    """The frames of every episode in `directories`, which must share cameras and frame size."""
    episodes, layout = [], None
    for directory in directories:
        images = (read_manifest(directory)["obs_spec"] or {}).get("images") or {}
        if not images:
            raise ValueError(f"{directory}: holds no camera frames (record with --obs pixels)")
        found = {name: tuple(shape) for name, shape in images.items()}
        if layout not in (None, found):
            raise ValueError(f"{directory}: cameras {found} differ from the other directories' {layout}")
        layout = found
        episodes += [episode.images for episode in iter_episodes(directory)]
    cameras = tuple(layout)
    sizes = {shape[0] for shape in layout.values()} | {shape[1] for shape in layout.values()}
    if len(sizes) != 1:
        raise ValueError(f"camera frames must be square and of one size, got {layout}")
    if len(episodes) < 2:
        raise ValueError(f"need >= 2 episodes (one is held out to measure the loss), got {len(episodes)}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    held = max(1, round(held_out_fraction * len(episodes)))

    def stack(indices) -> dict[str, torch.Tensor]:
        return {c: torch.from_numpy(np.concatenate([episodes[i][c] for i in indices])) for c in cameras}

    return Frames(stack(order[held:]), stack(order[:held]), cameras, sizes.pop(), len(episodes))


# -- training -------------------------------------------------------------------------------------
@torch.no_grad()
def held_out_loss(model: SpatialAutoencoder, frames: dict[str, torch.Tensor], chunk: int = 256) -> float:
    total, count = 0.0, len(next(iter(frames.values())))
    for start in range(0, count, chunk):
        part = {c: f[start : start + chunk] for c, f in frames.items()}
        total += float(model.loss(part)) * len(part[model.cameras[0]])
    return total / count


def pretrain(
    config: PretrainConfig, progress: bool = True, stop: threading.Event | None = None
) -> dict[str, Any]:
    """Train a FrameTrunk on the frames of `config.data` and write it to `config.out`; returns the
    summary (also saved in the model file): held-out loss before and after, and the model's hash.
    `stop` set (a signal) ends it early with nothing written: the summary says `stopped`."""
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    frames = load_frames(config.data, config.held_out_fraction, config.seed)
    trunk = FrameTrunk(frames.image_size, config.channels)
    model = SpatialAutoencoder(trunk, frames.cameras, config.reconstruct)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    count = len(frames.train[frames.cameras[0]])
    loss_before = held_out_loss(model, frames.held_out)
    bar = progress_bar(total=config.steps, unit="step", desc="pretrain", disable=not progress)
    for _ in range(config.steps):
        if stop is not None and stop.is_set():
            bar.close()
            return {"out": None, "stopped": True, "steps_done": bar.n}
        rows = torch.randint(count, (config.batch_size,), generator=generator)
        loss = model.loss({c: f[rows] for c, f in frames.train.items()})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
        if bar.n % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    loss_after = held_out_loss(model, frames.held_out)
    info = {
        "objective": "spatial-autoencoder" if config.steps else "none (random weights)",
        **asdict(config),
        "episodes": frames.episodes,
        "train_frames": count,
        "held_out_frames": len(frames.held_out[frames.cameras[0]]),
        "held_out_loss_before": round(loss_before, 6),
        "held_out_loss_after": round(loss_after, 6),
        "loss_ratio": round(loss_before / max(loss_after, 1e-12), 3),
        "temperature": round(model.log_temperature.detach().exp().item(), 4),
    }
    digest = save_encoder_model(config.out, trunk, frames.cameras, info)
    return {"out": str(Path(config.out)), "hash": digest, "cameras": list(frames.cameras), **info}
