"""Behaviour cloning on a demo directory (`realrl bc train`): the demos' steps with their next
actions (chunks), split by episode into training and held-out parts, one of the BC policies of
policies.bc fitted with Adam, a loss curve, and a policy model file (policies.policy_files). A
frozen image trunk's maps are computed once per frame before training, as the learner's replay
does: the steps then train only the heads and the policy."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from formats.episodes import iter_episodes, read_manifest
from formats.files import atomic_write
from formats.progress import progress_bar
from learner.configs import BCTrainConfig
from policies import PolicySpec
from policies.bc import BC_POLICIES, BCPolicy
from policies.encoder_files import encoder_identity
from policies.policy_files import save_policy
from policies.sac import stack_images

_log = logging.getLogger(__name__)
MAP_CHUNK = 256  # frames per pass of a frozen trunk when caching maps
FIXED_NOISE_SEED = 12345  # the held-out loss draws the same noise at every point of the curve


# -- data -----------------------------------------------------------------------------------------
@dataclass
class DemoSteps:
    """Every step of a demo directory: observation t and the actions t .. t+K-1 of its episode."""

    states: torch.Tensor  # (N, S) float32
    images: dict[str, torch.Tensor]  # camera -> (N, H, W, 3) uint8; empty for state demos
    chunks: torch.Tensor  # (N, K, A) float32
    mask: torch.Tensor  # (N, K) bool: action t + k lies inside the episode
    episode: torch.Tensor  # (N,) the episode index of each step
    spec: PolicySpec
    task: str
    episodes: int

    def rows(self, episodes: np.ndarray) -> torch.Tensor:
        return torch.nonzero(torch.isin(self.episode, torch.as_tensor(episodes))).squeeze(1)


def action_chunks(actions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, A) -> chunks (T, k, A), row t holding actions t .. t+k-1, and the mask of those inside the
    episode (past its end: the last action repeated, masked out)."""
    t = len(actions)
    index = np.arange(t)[:, None] + np.arange(k)[None, :]
    return actions[np.minimum(index, t - 1)], index < t


def load_demo_steps(directory: str | Path, obs: str, chunk: int) -> DemoSteps:
    """The demos of `directory` as training rows; `obs` must be what they hold (or auto)."""
    manifest = read_manifest(directory)
    held = manifest.get("obs_mode", "pixels" if (manifest["obs_spec"] or {}).get("images") else "state")
    if obs not in ("auto", held):
        raise ValueError(
            f"--obs {obs}: {directory} holds {held} demos (record {obs} demos with `realrl demos record "
            f"--obs {obs}`)"
        )
    states, images, chunks, masks, episode = [], {}, [], [], []
    for index, ep in enumerate(iter_episodes(directory)):
        if len(ep) == 0:
            continue
        states.append(ep.states[:-1])  # the final observation has no action
        for camera, frames in ep.images.items():
            images.setdefault(camera, []).append(frames[:-1])
        chunk_rows, mask = action_chunks(ep.action, chunk)
        chunks.append(chunk_rows)
        masks.append(mask)
        episode.append(np.full(len(ep), index))
    if len(episode) < 2:
        raise ValueError(f"{directory}: need >= 2 episodes (one is held out), got {len(episode)}")
    cameras = tuple(images)
    image_size = images[cameras[0]][0].shape[1] if cameras else 128
    spec = PolicySpec(states[0].shape[1], chunks[0].shape[2], cameras, image_size)
    return DemoSteps(
        states=torch.from_numpy(np.concatenate(states)).float(),
        images={c: torch.from_numpy(np.concatenate(f)) for c, f in images.items()},
        chunks=torch.from_numpy(np.concatenate(chunks)).float(),
        mask=torch.from_numpy(np.concatenate(masks)),
        episode=torch.from_numpy(np.concatenate(episode)),
        spec=spec,
        task=manifest.get("task", ""),
        episodes=len(episode),
    )


class Features:
    """Encoder features of demo rows for a policy: from cached per-frame maps when its trunk is
    frozen (computed here once), else from the frames through its whole encoder."""

    def __init__(self, policy: BCPolicy, data: DemoSteps, progress: bool) -> None:
        self.policy, self.data = policy, data
        self.maps = None
        if data.spec.cameras and policy.encoder.frozen_trunk:
            self.maps = self._cache_maps(progress)

    def _cache_maps(self, progress: bool) -> dict[str, torch.Tensor]:
        n = len(self.data.states)
        parts: dict[str, list[torch.Tensor]] = {c: [] for c in self.data.spec.cameras}
        bar = progress_bar(total=n, unit="frame", desc="encode", disable=not progress)
        for start in range(0, n, MAP_CHUNK):
            chunk = {c: f[start : start + MAP_CHUNK] for c, f in self.data.images.items()}
            for camera, maps in self.policy.encoder.frame_maps(chunk).items():
                parts[camera].append(maps)
            bar.update(len(chunk[self.data.spec.cameras[0]]))
        bar.close()
        return {c: torch.cat(p) for c, p in parts.items()}

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        state, cameras = self.data.states[rows], self.data.spec.cameras
        if not cameras:
            return self.policy.encoder(state)
        if self.maps is not None:
            return self.policy.encoder(state, maps=[self.maps[c][rows] for c in cameras])
        stacked = stack_images({c: self.data.images[c][rows] for c in cameras}, cameras)
        return self.policy.encoder(state, stacked.reshape(len(cameras), len(rows), *stacked.shape[1:]))


# -- training -------------------------------------------------------------------------------------
def split_episodes(episodes: int, held_out_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training episodes, held-out episodes): at least one held out, at least one to train on."""
    order = np.random.default_rng(seed).permutation(episodes)
    held = min(episodes - 1, max(1, round(held_out_fraction * episodes)))
    return np.sort(order[held:]), np.sort(order[:held])


@torch.no_grad()
def held_out_figures(
    policy: BCPolicy, features: Features, data: DemoSteps, rows: torch.Tensor
) -> tuple[float, float]:
    """(loss, action MSE) on held-out rows: the loss with fixed noise, and the mean squared error of
    the action the policy would take (its first action, without acting state) against the demo's."""
    policy.eval()
    generator = torch.Generator().manual_seed(FIXED_NOISE_SEED)
    f = features(rows)
    loss = float(policy.loss(f, data.chunks[rows], data.mask[rows], generator))
    action = policy.first_action(f, torch.Generator().manual_seed(FIXED_NOISE_SEED))
    mse = float((action - data.chunks[rows, 0]).pow(2).mean())
    policy.train()
    return loss, mse


def train_bc(
    config: BCTrainConfig, progress: bool = True, stop: threading.Event | None = None
) -> dict[str, Any]:
    """Fit `config.policy` on `config.demos`, write the model and its loss curve; returns the summary
    (also saved in the model's info). `stop` set (a signal) ends it early with nothing written."""
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    policy_class = BC_POLICIES[config.policy]
    chunk = config.model.chunk_size if config.policy == "chunk" else 1
    data = load_demo_steps(config.demos, config.obs, chunk)
    if data.spec.cameras and config.model.encoder == "conv" and not torch.cuda.is_available():
        _log.warning(
            "--model.encoder conv runs the whole image encoder on every batch: seconds per step on a "
            "CPU; a frozen trunk (--model.encoder pretrained:MODEL, `realrl encoder pretrain`) is cached"
        )
    # A frozen trunk's model file by absolute path and hash: the MODEL loads from any directory.
    encoder, digest = encoder_identity(config.model.encoder, config.model.encoder_hash)
    model_config = replace(config.model, encoder=encoder, encoder_hash=digest)
    policy = policy_class.build(data.spec, model_config, seed=config.seed)
    train_episodes, held_episodes = split_episodes(data.episodes, config.held_out_fraction, config.seed)
    train_rows, held_rows = data.rows(train_episodes), data.rows(held_episodes)
    policy.encoder.fit_state_normalizer(data.states[train_rows])
    features = Features(policy, data, progress)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    curve = [(0, None, *held_out_figures(policy, features, data, held_rows))]
    bar = progress_bar(total=config.steps, unit="step", desc=f"bc {config.policy}", disable=not progress)
    running = []
    for step in range(1, config.steps + 1):
        if stop is not None and stop.is_set():
            bar.close()
            return {"out": None, "stopped": True, "steps_done": step - 1}
        pick = torch.randint(len(train_rows), (config.batch_size,), generator=generator)
        rows = train_rows[pick]
        loss = policy.loss(features(rows), data.chunks[rows], data.mask[rows], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.detach())
        bar.update(1)
        if step % config.eval_every == 0 or step == config.steps:
            train_loss = float(torch.stack(running).mean())  # one host sync per curve point
            running = []
            curve.append((step, train_loss, *held_out_figures(policy, features, data, held_rows)))
            bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{curve[-1][2]:.4f}")
    bar.close()
    plot = loss_curve_path(config.out)
    plot_loss_curve(curve, plot, config.policy)
    final = curve[-1]
    info = {
        "policy": config.policy,
        "task": data.task,
        "demos": str(Path(config.demos).resolve()),
        "episodes": data.episodes,
        "train_steps_of_data": len(train_rows),
        "held_out_steps_of_data": len(held_rows),
        "train_loss": final[1],
        "val_loss": round(final[2], 6),
        "val_action_mse": round(final[3], 6),
        "val_loss_before": round(curve[0][2], 6),
        "curve": [list(point) for point in curve],
        "settings": {k: v for k, v in asdict(config).items() if k not in ("model", "out")},
    }
    digest = save_policy(config.out, policy, info)
    return {
        "out": str(Path(config.out)),
        "model_hash": digest,
        "loss_curve": str(plot),
        **{k: v for k, v in info.items() if k not in ("curve", "settings")},
        "spec": data.spec.to_json(),
        "steps": config.steps,
    }


def loss_curve_path(model: str | Path) -> Path:
    model = Path(model)
    return model.with_name(f"{model.stem}.loss.png")


def plot_loss_curve(curve: list[tuple], path: Path, policy: str) -> None:
    """Training loss (mean over each interval) and held-out loss against steps, and the held-out
    action error: two panels, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p[0] for p in curve]
    fig, (ax_loss, ax_mse) = plt.subplots(1, 2, figsize=(10, 3.6))
    trained = [p for p in curve if p[1] is not None]
    ax_loss.plot([p[0] for p in trained], [p[1] for p in trained], label="train")
    ax_loss.plot(steps, [p[2] for p in curve], label="held out")
    ax_loss.set(xlabel="step", ylabel="loss", title=f"BC {policy}: loss")
    if policy != "gaussian":  # a negative log-likelihood can go below zero: no log scale
        ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_mse.plot(steps, [p[3] for p in curve], color="tab:green")
    ax_mse.set(xlabel="step", ylabel="MSE vs demo action", title="held-out action error", yscale="log")
    for ax in (ax_loss, ax_mse):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
