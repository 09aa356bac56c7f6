"""`realrl train` and `realrl learner`: wire the pieces of a run and hand them to the one training
loop (learner.loop.TrainingLoop). With `--actors 0` the step source is the in-process actor
(actors.local.LocalActor); `realrl learner` and `realrl train --actors N` feed the loop from the
learner server's ingest (learner.sources.IngestSource). Evaluation rolls the policy out in the
task's twin through the actor's composition (actors.evaluation)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from actors.evaluation import Evaluator
from actors.local import LocalActor
from actors.specs import image_shapes, policy_spec
from envs import DiscreteGripper, make_env, make_gymnasium_env, resolve_task_id
from formats.episodes import read_manifest
from learner.algorithms import ALGORITHMS, make_algorithm
from learner.configs import ServerConfig, TrainConfig
from learner.loop import (
    TrainingLoop,
    build_replay,
    configure_threads,
    open_run,
    resolve_device,
    seed_everything,
)
from learner.sources import IngestSource, learner_welcome
from policies.random import RandomPolicy


def make_train_env(config: TrainConfig):
    """The env a run trains and evaluates in: the task's twin, or a gymnasium env."""
    if config.env is not None:
        env = make_gymnasium_env(config.env)
    else:
        env = make_env(config.task, obs_mode=config.obs, image_size=config.image_size)
    return DiscreteGripper(env) if ALGORITHMS[config.algorithm].policy_class.discrete_gripper else env


def prepare_demos(config: TrainConfig, out: Path, progress: bool) -> Path:
    """The demo directory to load: the given one, or scripted demos recorded into <out>/demos."""
    if config.demos:
        return Path(config.demos)
    directory = out / "demos"
    if (directory / "manifest.json").exists() and len(
        read_manifest(directory)["episodes"]
    ) >= config.demo_episodes:
        return directory
    from actors.demos import record_scripted

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


def build_loop(
    config: TrainConfig,
    out: str | Path,
    *,
    server: ServerConfig | None = None,
    on_ready=None,
    resume: bool = False,
    progress: bool = True,
) -> TrainingLoop:
    """A run's loop: the in-process actor as its step source, or (with `server`) actor processes."""
    out = Path(out)
    if config.actors != 0 and server is None:
        raise ValueError("the in-process actor runs with --actors 0 (or give a server for actor processes)")
    if config.env is None:
        config = replace(config, task=resolve_task_id(config.task))
    config = open_run(config, out, resume)
    configure_threads(config.threads, config.actors)
    # A local actor steps its own env; with actor processes this one only evaluates.
    env = make_train_env(config) if server is None else None
    eval_env = make_train_env(config)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    spec = policy_spec(eval_env)
    demo_dir = None if config.env else prepare_demos(config, out, progress)
    algorithm_class = ALGORITHMS[config.algorithm]
    replay = build_replay(
        config,
        spec.state_dim,
        spec.action_dim,
        image_shapes(eval_env),
        demo_dir,
        out,
        device,
        algorithm_class.relabel_demo,
    )
    random_steps = config.random_steps
    if random_steps is None:  # without demos, explore uniformly until learning starts
        random_steps = 0 if len(replay.demo) else config.learning_starts
    algorithm = make_algorithm(config.algorithm, config.agent, spec, device, config.seed)
    if server is None:
        explore = RandomPolicy(spec, seed=config.seed)
        source = LocalActor(env, replay.online, config.seed, explore, random_steps)
    else:
        welcome = learner_welcome(config, algorithm.policy, random_steps)
        source = IngestSource(config, server, replay.online, out / "replay" / "journal", welcome, on_ready)
    evaluate = Evaluator(eval_env, config.eval_episodes)
    return TrainingLoop(config, out, algorithm, replay, source, evaluate, resume=resume, progress=progress)


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> dict:
    """`realrl train --actors 0`: the whole run in this process."""
    return build_loop(config, out, resume=resume, progress=progress).run(stop)
