"""Demonstrations: scripted demos recorded in the sim twin (the expert as a policy, through the
actor's composition) into a demo directory (formats.episodes), and a contact sheet of their camera
frames. `realrl demos` is the command over this."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from actors.composition import ActionPipeline
from actors.scripted import ScriptedPolicy
from actors.specs import obs_spec
from envs import make_env, resolve_task_id
from formats.episodes import (
    Episode,
    EpisodeBuilder,
    EpisodeWriter,
    check_manifest,
    iter_episodes,
    read_manifest,
    summarize,
)
from formats.progress import progress_bar


def record_scripted(
    task: str,
    episodes: int,
    out: str | Path,
    *,
    seed: int = 0,
    noise: float = 0.0,
    obs_mode: str = "pixels",
    image_size: int = 128,
    randomize: bool = False,
    successes_only: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Roll out the twin's scripted expert and append `episodes` episodes to `out`.

    Episode k of a directory uses seed `seed + k`, and never a seed an episode already in it was
    rolled out with (the manifest keeps each one's), so appending continues the sequence instead of
    repeating it. With `successes_only`, failed rollouts are dropped and retried (at most 3x the
    requested count). `stop` (e.g. set by SIGINT/SIGTERM) is checked between episodes: the episode
    under way is finished and written first. The summary adds `recorded` (by this call) and
    `stopped`."""
    env_id = resolve_task_id(task)
    env = make_env(env_id, obs_mode=obs_mode, image_size=image_size, randomize=randomize)
    unwrapped = env.unwrapped
    spec = unwrapped.task.spec
    writer = EpisodeWriter(
        out,
        task=env_id,
        obs_mode=obs_mode,
        source="scripted",
        noise=noise,
        control_hz=unwrapped.robot.control_hz,
        randomize=randomize,
    )
    builder = EpisodeBuilder()
    entries = writer.manifest["episodes"]
    attempt_seed = max([seed + len(entries)] + [e["seed"] + 1 for e in entries if "seed" in e])
    recorded, attempts, stopped = 0, 0, False
    with progress_bar(total=episodes, desc=f"demos {spec.name}", unit="ep", disable=not progress) as bar:
        while recorded < episodes and attempts < (3 * episodes if successes_only else episodes):
            episode = rollout_expert(env, builder, seed=attempt_seed, noise=noise)
            attempts += 1
            if episode.succeeded or not successes_only:
                writer.add(episode, seed=attempt_seed)
                recorded += 1
                bar.update(1)
                bar.set_postfix(success=f"{episode.succeeded}", steps=len(episode))
            attempt_seed += 1
            if stop is not None and stop.is_set():
                stopped = True
                break
    env.close()
    writer.save_manifest()  # a directory stopped before its first episode still has one
    if recorded < episodes and not stopped:
        raise RuntimeError(
            f"only {recorded}/{episodes} successful episodes in {attempts} attempts "
            f"(noise {noise}); lower --noise or drop --successes-only"
        )
    return {**summarize(out), "recorded": recorded, "stopped": stopped}


def verify_demos(directory: str | Path) -> int:
    """Load every episode (checksums, and shapes against the manifest's obs spec and action dim)
    and check that the manifest's task, in its obs mode, observes and acts what the episodes hold;
    the first mismatch raises EpisodeFormatError naming it. Returns the episodes checked."""
    manifest = read_manifest(directory)
    count = sum(1 for _ in iter_episodes(directory))
    if manifest["obs_spec"] is not None:
        cameras = manifest["obs_spec"]["images"]
        image_size = next(iter(cameras.values()))[0] if cameras else 128
        env = make_env(manifest["task"], obs_mode=manifest["obs_mode"], image_size=image_size)
        try:
            task_spec, action_dim = obs_spec(env), env.action_space.shape[0]
        finally:
            env.close()
        check_manifest(
            manifest,
            directory,
            task=None,  # the manifest's own: what matters is whether that task observes this
            obs_spec=task_spec,
            action_dim=action_dim,
            whose=f"what its task {manifest['task']} ({manifest['obs_mode']}) observes and acts",
        )
    return count


def rollout_expert(env, builder: EpisodeBuilder, *, seed: int, noise: float) -> Episode:
    """One episode of the scripted expert (noise seeded per episode), as a demo episode."""
    pipeline = ActionPipeline(ScriptedPolicy(env, noise=noise, seed=seed))
    obs, _ = env.reset(seed=seed)
    pipeline.reset()
    builder.start(obs)
    while True:
        action = pipeline.act(obs).action
        obs, reward, terminated, truncated, info = env.step(action)
        builder.add(action, obs, reward, terminated, truncated, info)
        if terminated or truncated:
            return builder.build()


def contact_sheet(episodes: list[Episode], columns: int = 6) -> np.ndarray:
    """RGB image: one row per episode, `columns` frames evenly spaced in time, every camera side
    by side in each cell, labelled with the episode and step."""
    if not episodes or not episodes[0].images:
        raise ValueError("a contact sheet needs pixel demos (record with --obs pixels)")
    rows = []
    for index, episode in enumerate(episodes):
        times = np.linspace(0, len(episode), columns).round().astype(int)
        cells = []
        for t in times:
            cell = np.concatenate([frames[t] for frames in episode.images.values()], axis=1).copy()
            cv2.putText(
                cell,
                f"ep{index} t={t}",
                (3, 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            cells.append(np.pad(cell, ((1, 1), (1, 1), (0, 0))))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def write_contact_sheet(directory: str | Path, path: str | Path, max_episodes: int = 4) -> Path:
    episodes = []
    for episode in iter_episodes(directory):
        episodes.append(episode)
        if len(episodes) == max_episodes:
            break
    sheet = contact_sheet(episodes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
