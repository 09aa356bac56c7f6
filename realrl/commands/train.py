"""`realrl train` with the in-process actor loop (`--actors 0`): RLPD off-policy learning on a sim
twin task from scripted demos, or on any gymnasium env (`--env gymnasium:<ID>`, no demos). It lives
in the command layer because it joins envs (the actor side) and the learner; the ZeroMQ work splits
it into actor and learner processes. Writes the run-directory contract: config.json, metrics.jsonl,
TensorBoard events (tensorboard/), learning_curve.png and atomic checkpoints/ with `latest`; the
online replay goes to an incremental log (replay/) that checkpoints point into."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from envs import DiscreteGripper, make_env, make_gymnasium_env, resolve_task_id, tristate_gripper_commands
from formats.config import load_config, save_config
from formats.episodes import Episode, read_manifest
from formats.files import atomic_write
from learner.configs import TrainConfig
from learner.hybrid import make_agent
from learner.replay import MixedSampler, ReplayBuffer
from learner.replay_log import ReplayLog
from learner.sac import SACAgent

_log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training stopped on purpose (non-finite losses, bad data)."""


def resolve_device(name: str) -> torch.device:
    return torch.device(
        "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)
    )


def replay_bytes(capacity: int, state_dim: int, action_dim: int, image_shapes: dict) -> int:
    """Bytes a ReplayBuffer of this shape allocates (float32 state/action/reward, uint8 frames, flags)."""
    per_slot = 4 * (state_dim + action_dim + 1) + 3 + 16 + sum(int(np.prod(s)) for s in image_shapes.values())
    return capacity * per_slot


def resolve_replay_device(name: str, learner: torch.device, needed_bytes: int) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if learner.type == "cuda":
        free, _ = torch.cuda.mem_get_info(learner)
        if needed_bytes < free / 2:
            return learner
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_demos(config: TrainConfig, out: Path, progress: bool) -> Path:
    """The demo directory to load: the given one, or scripted demos recorded into <out>/demos."""
    if config.demos:
        return Path(config.demos)
    directory = out / "demos"
    if (directory / "manifest.json").exists() and len(
        read_manifest(directory)["episodes"]
    ) >= config.demo_episodes:
        return directory
    from realrl.commands.demos import record_scripted

    record_scripted(
        config.task,
        config.demo_episodes,
        directory,
        seed=10_000 + config.seed,
        obs_mode=config.obs,
        image_size=config.image_size,
        successes_only=True,
        progress=progress,
    )
    return directory


def evaluate(env, agent: SACAgent, episodes: int, seed: int) -> dict[str, float | None]:
    """Deterministic-policy episodes: success rate (None for envs without a success signal) and
    mean undiscounted return."""
    successes, returns = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, success = 0.0, None
        while True:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            if info.get("success") is not None:
                success = bool(success) or bool(info["success"])
            if terminated or truncated:
                break
        successes.append(success)
        returns.append(total)
    rate = None if None in successes else float(np.mean(successes))
    return {"success_rate": rate, "eval_return": float(np.mean(returns))}


def plot_learning_curve(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in rows if "eval_return" in r]
    fig, (ax_success, ax_return) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["env_steps"] for r in evals]
    rates = [np.nan if r["success_rate"] is None else r["success_rate"] for r in evals]
    ax_success.plot(steps, rates, marker="o")
    ax_success.set(xlabel="env steps", ylabel="eval success rate", ylim=(-0.05, 1.05), title="success")
    ax_return.plot(steps, [r["eval_return"] for r in evals], marker="o", color="tab:orange")
    ax_return.set(xlabel="env steps", ylabel="eval return", title="return")
    for ax in (ax_success, ax_return):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


class Trainer:
    in_process = True  # the env steps here; LearnerRun gets its steps from actor processes

    def __init__(self, config: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True):
        self.out = Path(out)
        self.progress = progress
        if config.actors != 0 and self.in_process:
            raise ValueError("Trainer runs the actor loop in this process: use --actors 0 (or LearnerRun)")
        if config.keep_checkpoints < 1:
            raise ValueError(f"--keep-checkpoints must be >= 1, got {config.keep_checkpoints}")
        if not resume and ((self.out / "metrics.jsonl").exists() or (self.out / "checkpoints").exists()):
            raise ValueError(f"{self.out} already holds a run: pass --resume to continue it, or a new --out")
        if resume and (self.out / "config.json").exists():
            saved = load_config(TrainConfig, self.out / "config.json")
            config = replace(saved, steps=max(config.steps, saved.steps))
        if config.env is None:
            config = replace(config, task=resolve_task_id(config.task))
        self.config = config
        self.env, self.eval_env = self._make_env(), self._make_env()
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(config, self.out / "config.json")
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        self.env.action_space.seed(config.seed)
        spaces = self.env.observation_space
        state_dim = spaces["state"].shape[0]
        action_dim = self.env.action_space.shape[0]
        image_shapes = (
            {c: space.shape for c, space in spaces["images"].items()} if "images" in spaces.spaces else {}
        )
        needed = replay_bytes(config.buffer_capacity, state_dim, action_dim, image_shapes)
        buffer_args = dict(
            state_dim=state_dim,
            action_dim=action_dim,
            image_shapes=image_shapes,
            device=resolve_replay_device(config.replay_device, self.device, needed),
            n_step=config.n_step,
            gamma=config.agent.gamma,
        )
        demo_dir = None if config.env else prepare_demos(config, self.out, progress)
        demo_slots = 2
        if demo_dir is not None:
            demo_slots += sum(e["length"] + 1 for e in read_manifest(demo_dir)["episodes"])
        self.demo_buffer = ReplayBuffer(demo_slots, **buffer_args, seed=config.seed + 1)
        if demo_dir is not None:
            labels = hybrid_gripper_labels if config.agent.hybrid_gripper else None
            self.demo_buffer.load_demos(demo_dir, labels)
        self.online_buffer = ReplayBuffer(config.buffer_capacity, **buffer_args, seed=config.seed + 2)
        self.replay_log = ReplayLog(self.out / "replay" / "online")
        self.sampler = MixedSampler(self.demo_buffer, self.online_buffer, config.demo_fraction)
        self.random_steps = config.random_steps
        if self.random_steps is None:  # without demos, explore uniformly until learning starts
            self.random_steps = 0 if len(self.demo_buffer) else config.learning_starts
        self.agent = make_agent(
            config.agent,
            state_dim,
            action_dim,
            tuple(image_shapes),
            config.image_size,
            self.device,
            config.seed,
        )
        self.env_steps = self.updates = self.episodes = 0
        self._episode_return, self._episode_success = 0.0, False
        self._normalizer_checked = False
        self._nonfinite_logged = 0
        self._finished: list[tuple[float, bool]] = []  # (return, success) since the last log row
        self.rows: list[dict] = []
        self.start_wall = time.monotonic()
        if resume and (self.out / "checkpoints" / "latest").exists():
            self.load_checkpoint(self.out / "checkpoints" / "latest")
        else:
            self.replay_log.clear()  # segments of a run that died before its first checkpoint
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(self.out / "tensorboard", purge_step=self.env_steps or None)

    def _make_env(self):
        c = self.config
        if c.env is not None:
            env = make_gymnasium_env(c.env)
        else:
            env = make_env(c.task, obs_mode=c.obs, image_size=c.image_size)
        return DiscreteGripper(env) if c.agent.hybrid_gripper else env

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        c = self.config
        obs, _ = self.env.reset(seed=c.seed + self.episodes)
        self.online_buffer.start_episode(obs)
        last_eval, metrics, update_clock = None, {}, (time.monotonic(), self.updates)
        bar = tqdm(
            total=c.steps, initial=self.env_steps, unit="step", desc="train", disable=not self.progress
        )
        with open(self.out / "metrics.jsonl", "a") as log:
            while self.env_steps < c.steps:
                obs = self.act_and_store(obs)
                if self.env_steps >= c.learning_starts:
                    metrics = self.learn_step()
                if self.env_steps % c.log_every == 0 and metrics:
                    row = self.log_training(metrics, update_clock)
                    update_clock = (time.monotonic(), self.updates)
                    self.write_row(log, row)
                    bar.set_postfix(updates_per_s=f"{row['updates_per_s']:.0f}", success=last_eval)
                if self.env_steps % c.eval_every == 0 or self.env_steps == c.steps:
                    row = {
                        **self.counters(),
                        **evaluate(self.eval_env, self.agent, c.eval_episodes, 1_000_000),
                    }
                    last_eval = row["success_rate"]
                    self.write_row(log, row)
                    plot_learning_curve(self.rows, self.out / "learning_curve.png")
                    bar.set_postfix(success=last_eval, eval_return=f"{row['eval_return']:.1f}")
                if self.env_steps % c.checkpoint_every == 0 or self.env_steps == c.steps:
                    self.save_checkpoint()
                bar.update(1)
        bar.close()
        self.tensorboard.close()
        evals = [r for r in self.rows if "eval_return" in r]
        rates = [r["success_rate"] for r in evals if r["success_rate"] is not None]
        return {
            "out": str(self.out),
            **self.counters(),
            "final_success_rate": evals[-1]["success_rate"] if evals else None,
            "best_success_rate": max(rates, default=None),
            "final_eval_return": evals[-1]["eval_return"] if evals else None,
        }

    def act_and_store(self, obs):
        c = self.config
        action = self.env.action_space.sample() if self.env_steps < self.random_steps else self.agent.act(obs)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.online_buffer.add(action, reward, terminated, truncated, next_obs)
        self.env_steps += 1
        self._episode_return += float(reward)
        self._episode_success = self._episode_success or bool(info.get("success"))
        if terminated or truncated:
            self._finished.append((self._episode_return, self._episode_success))
            self._episode_return, self._episode_success = 0.0, False
            self.episodes += 1
            next_obs, _ = self.env.reset(seed=c.seed + self.episodes)
            self.online_buffer.start_episode(next_obs)
        return next_obs

    def learn_step(self) -> dict[str, torch.Tensor]:
        """UTD critic updates and one actor/temperature update on one sampled batch (no host sync)."""
        c = self.config
        if not self._normalizer_checked:  # once per process: reading the flag is a host sync
            self._normalizer_checked = True
            if c.agent.normalize_state and not bool(self.agent.encoder.normalizer_fitted):
                source = self.demo_buffer if len(self.demo_buffer) else self.online_buffer
                self.agent.fit_state_normalizer(source.stored_states())
        batch = self.sampler.sample(c.batch_size * c.utd).to(self.device)
        self.updates += c.utd
        return self.agent.update(batch, c.utd)

    def counters(self) -> dict:
        return {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_s": round(time.monotonic() - self.start_wall, 2),
        }

    def log_training(self, metrics: dict[str, torch.Tensor], update_clock: tuple[float, int]) -> dict:
        values = {name: float(value) for name, value in metrics.items()}  # the one host sync per log row
        if values["nonfinite_streak"] >= self.config.max_nonfinite_updates:
            self.save_checkpoint()
            raise TrainingError(
                f"{int(values['nonfinite_streak'])} consecutive updates had NaN/inf losses (all skipped, "
                f"weights untouched); stopping. Last good weights: {self.out / 'checkpoints' / 'latest'}"
            )
        elapsed = max(time.monotonic() - update_clock[0], 1e-9)
        finished, self._finished = self._finished, []
        episode_stats = {}
        if finished:  # exploration episodes (stochastic policy) finished since the last row
            episode_stats = {
                "train_episode_return": float(np.mean([r for r, _ in finished])),
                "train_success_rate": float(np.mean([s for _, s in finished])),
            }
        nonfinite_total = int(self.agent.nonfinite_total)
        if nonfinite_total > self._nonfinite_logged:
            _log.warning(
                "%d update(s) skipped for NaN/inf losses or gradients since the last row (%d in total)",
                nonfinite_total - self._nonfinite_logged,
                nonfinite_total,
            )
            self._nonfinite_logged = nonfinite_total
        return {
            **self.counters(),
            **values,
            **episode_stats,
            "updates_per_s": (self.updates - update_clock[1]) / elapsed,
            "nonfinite_total": nonfinite_total,
            "episodes": self.episodes,
            "rejected_transitions": self.online_buffer.rejected,
            "replay_mb": round((self.online_buffer.nbytes + self.demo_buffer.nbytes) / 2**20, 1),
        }

    def write_row(self, log, row: dict) -> None:
        self.rows.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        group = "eval" if "eval_return" in row else "train"
        for name, value in row.items():
            if name != "env_steps" and isinstance(value, int | float):
                self.tensorboard.add_scalar(f"{group}/{name}", value, global_step=row["env_steps"])
        self.tensorboard.flush()

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Atomic: the replay log gets the new slots (a durable segment), then the small state is
        written into a temporary directory, fsynced and renamed; then `latest` is swapped. Only
        the newest `keep_checkpoints` directories are kept."""
        root = self.out / "checkpoints"
        root.mkdir(exist_ok=True)
        replay_state = self.snapshot_replay()
        name = f"step_{self.env_steps:09d}"
        tmp = root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        state = {
            "agent": self.agent.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.agent.optimizers.items()},
            "generators": {k: getattr(self.agent, k).get_state() for k in GENERATORS},
            "nonfinite": [self.agent.nonfinite_streak, self.agent.nonfinite_total],
            **replay_state,
            # Demos are reloaded from their directory; only their sampler state must carry over.
            "demo_replay_meta": self.demo_buffer.meta_state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "action_space": self.env.action_space.np_random.bit_generator.state,
            },
        }
        atomic_write(tmp / "state.pt", lambda f: torch.save(state, f))
        counters = {**self.counters(), "episodes": self.episodes, **self.checkpoint_counters(replay_state)}
        atomic_write(tmp / "counters.json", lambda f: f.write(json.dumps(counters).encode()))
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        link = root / ".latest.tmp"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(name)
        os.replace(link, root / "latest")
        self._prune_checkpoints(root)
        return final

    def snapshot_replay(self) -> dict:
        """The online replay's part of a checkpoint: new slots go to the log, the rest is small."""
        log_end = self.replay_log.append(self.online_buffer)
        return {"online_replay": {"log_end": log_end, "meta": self.online_buffer.meta_state_dict()}}

    def checkpoint_counters(self, replay_state: dict) -> dict:
        """What counters.json records besides the counters (pruning reads it, not state.pt)."""
        return {"replay_log_end": replay_state["online_replay"]["log_end"]}

    def _prune_checkpoints(self, root: Path) -> None:
        kept = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old)
        oldest = kept[-self.config.keep_checkpoints :][0]
        self.prune_logs(json.loads((oldest / "counters.json").read_text()))

    def prune_logs(self, oldest_counters: dict) -> None:
        """Drop log data that not even the oldest kept checkpoint needs."""
        self.replay_log.prune(self.online_buffer.capacity, keep_from=oldest_counters["replay_log_end"])

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path / "state.pt", map_location=self.device, weights_only=False)
        self.agent.load_state_dict(state["agent"])
        for name, optimizer in self.agent.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for key in GENERATORS:
            getattr(self.agent, key).set_state(state["generators"][key].cpu())
        self.agent.nonfinite_streak, self.agent.nonfinite_total = state["nonfinite"]
        replay = state["online_replay"]
        self.replay_log.restore(self.online_buffer, replay["log_end"], replay["meta"])
        self.demo_buffer.load_meta_state_dict(state["demo_replay_meta"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self.env.action_space.np_random.bit_generator.state = state["rng"]["action_space"]
        counters = json.loads((path / "counters.json").read_text())
        self.env_steps, self.updates, self.episodes = (
            counters["env_steps"],
            counters["updates"],
            counters["episodes"],
        )
        self.start_wall -= counters["wall_s"]
        self.restore_extra(state)
        if (self.out / "metrics.jsonl").exists():
            rows = [
                json.loads(line) for line in (self.out / "metrics.jsonl").read_text().splitlines() if line
            ]
            self.rows = [r for r in rows if r["env_steps"] <= self.env_steps]
            with open(self.out / "metrics.jsonl", "w") as f:  # drop rows logged after the checkpoint
                f.writelines(json.dumps(r) + "\n" for r in self.rows)

    def restore_extra(self, state: dict) -> None:
        """Subclasses restore what they added to the checkpoint (after counters and replay)."""


def hybrid_gripper_labels(episode: Episode) -> Episode:
    """Demo gripper commands as the hybrid agent's tri-state choices (see DiscreteGripper)."""
    action = episode.action.copy()
    action[:, -1] = tristate_gripper_commands(action[:, -1])
    return replace(episode, action=action)


GENERATORS = ("generator", "act_generator", "subset_generator")
