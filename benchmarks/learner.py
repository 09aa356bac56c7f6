"""Learner update throughput: the real training-loop body (sample a 50/50 demo/online batch from
uint8 replay, move it to the device, one RLPD critic + actor + temperature update) on synthetic
data at given shapes. Reports updates/s, the median ms per update over timed chunks, and peak
memory. `update_only_*` times the update on one pre-sampled on-device batch, to separate the agent
from the replay. Compare with benchmarks/lerobot_sac.py (LeRobot 0.4.4) at the same flags."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import peak_memory_mb, synchronize, timed_rate
from formats.episodes import Episode
from learner.configs import SACConfig
from learner.loop import EncoderMaps
from learner.replay import FrameMaps, MixedSampler, ReplayBuffer
from learner.sac import SACAlgorithm
from policies import PolicySpec
from policies.encoder_files import save_encoder_model
from policies.encoders import PRETRAINED_PREFIX, FrameTrunk

EPISODE_STEPS = 100


def synthetic_episode(
    rng: np.random.Generator, steps: int, state_dim: int, action_dim: int, cameras: int, image_size: int
) -> Episode:
    frames = (steps + 1, image_size, image_size, 3)
    return Episode(
        states=rng.standard_normal((steps + 1, state_dim)).astype(np.float32),
        images={f"cam{i}": rng.integers(0, 256, frames, dtype=np.uint8) for i in range(cameras)},
        action=rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32),
        reward=(rng.random(steps) < 0.1).astype(np.float32),
        terminated=np.arange(steps) == steps - 1,
        truncated=np.zeros(steps, dtype=bool),
        success=np.zeros(steps, dtype=bool),
        safety_margin=np.ones(steps, dtype=np.float32),
        intervened=np.zeros(steps, dtype=bool),
    )


def filled_sampler(
    state_dim: int,
    action_dim: int,
    cameras: int,
    image_size: int,
    transitions: int,
    device,
    seed: int,
    frame_maps: FrameMaps | None = None,
) -> MixedSampler:
    """Demo and online buffers each holding `transitions` synthetic steps (and, with a frozen
    encoder's `frame_maps`, their cached maps, computed as the learner computes them)."""
    rng = np.random.default_rng(seed)
    image_shapes = {f"cam{i}": (image_size, image_size, 3) for i in range(cameras)}
    buffers = []
    for offset in range(2):
        episodes = max(1, transitions // EPISODE_STEPS)
        buffer = ReplayBuffer(
            episodes * (EPISODE_STEPS + 1) + 1,
            state_dim,
            action_dim,
            image_shapes,
            device=device,
            seed=seed + offset,
            frame_maps=frame_maps,
        )
        for _ in range(episodes):
            buffer.add_episode(
                synthetic_episode(rng, EPISODE_STEPS, state_dim, action_dim, cameras, image_size)
            )
        buffers.append(buffer)
    return MixedSampler(*buffers)


def run(
    obs: str = "state",
    encoder: str = "auto",
    critics: int = 10,
    batch: int = 256,
    image_size: int = 128,
    cameras: int = 2,
    state_dim: int = 14,
    action_dim: int = 4,
    seconds: float = 10.0,
    device: str = "auto",
    critic_impl: str = "auto",
    utd: int = 1,
    transitions: int = 10_000,
    seed: int = 0,
) -> dict:
    if obs not in ("state", "pixels"):
        raise ValueError(f"--obs must be state or pixels, got {obs!r}")
    if min(critics, batch, state_dim, action_dim, image_size) < 1 or seconds <= 0:
        raise ValueError(
            "--critics, --batch, --state-dim, --action-dim, --image-size and --seconds must be positive"
        )
    torch_device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    )
    cameras = cameras if obs == "pixels" else 0
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(torch_device)
    spec = PolicySpec(state_dim, action_dim, tuple(f"cam{i}" for i in range(cameras)), image_size)
    if encoder == "auto":  # as `realrl train` resolves it
        encoder = "conv" if torch_device.type == "cuda" else "pretrained"
    with tempfile.TemporaryDirectory() as scratch:
        if encoder == "pretrained" and obs == "pixels":  # random weights: the same architecture and cost
            model = Path(scratch) / "trunk.pt"
            save_encoder_model(model, FrameTrunk(image_size), spec.cameras, {"objective": "none"})
            encoder = f"{PRETRAINED_PREFIX}{model}"
        config = SACConfig(
            critics=critics,
            critic_impl=critic_impl,
            encoder=encoder,
            pretrained_encoder=False,  # same architecture and cost; no download needed
        )
        agent = SACAlgorithm(config, spec, torch_device, seed)
    frame_maps = EncoderMaps(agent.encoder, torch_device) if agent.encoder.frozen_trunk else None
    # Pixel buffers stay on the CPU (like a learner whose replay outgrows the GPU) unless on CUDA.
    sampler = filled_sampler(
        state_dim, action_dim, cameras, image_size, transitions, torch_device, seed, frame_maps
    )

    # At UTD U a learn step is what the training loop makes per env step: one sample of U batches,
    # U critic updates and one actor + temperature update. Rates below count critic updates.
    def loop_step() -> None:
        agent.update(sampler.sample(batch * utd).to(torch_device), utd)

    fixed = sampler.sample(batch * utd).to(torch_device)

    def update_step() -> None:
        agent.update(fixed, utd)

    chunk = 10 if obs == "state" else 2
    for _ in range(3):  # warm-up: allocator, kernels, Adam state
        loop_step()
    synchronize(torch_device)
    chunk = max(1, chunk // utd)
    learn_steps_per_s, ms_per_learn_step = timed_rate(loop_step, torch_device, seconds, chunk)
    update_only, update_only_ms = timed_rate(update_step, torch_device, seconds / 2, chunk)
    return {
        "implementation": "realrl",
        "updates_per_s": round(learn_steps_per_s * utd, 2),
        "ms_per_update": round(ms_per_learn_step / utd, 3),
        "update_only_updates_per_s": round(update_only * utd, 2),
        "update_only_ms_per_update": round(update_only_ms / utd, 3),
        "utd": utd,
        "env_steps_per_s": round(learn_steps_per_s, 2),
        "peak_mem_mb": round(peak_memory_mb(torch_device), 1),
        "obs": obs,
        "encoder": (encoder.split(":")[0] if obs == "pixels" else None),
        "cached_maps": frame_maps is not None,
        "state_dim": state_dim,
        "action_dim": action_dim,
        "batch": batch,
        "critics": critics,
        "critic_impl": type(agent.critic).__name__,
        "image_size": image_size if obs == "pixels" else None,
        "cameras": cameras,
        "device": str(torch_device),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "seconds": seconds,
    }
