"""`realrl train` and `realrl learner`: wire the pieces of a run and hand them to the one training
loop (learner.loop.TrainingLoop). With `--actors 0` the step source is the in-process actor
(actors.local.LocalActor); `realrl learner` and `realrl train --actors N` feed the loop from the
learner server's ingest (learner.sources.IngestSource). Evaluation rolls the policy out in the
task's twin through the actor's composition (actors.evaluation). With --resume, the flags the
user passed again replace their saved values (config_for_resume); the rest comes from config.json."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path

from actors.evaluation import Evaluator
from actors.local import LocalActor
from actors.specs import image_shapes, obs_spec, policy_spec
from envs import DiscreteGripper, make_env, make_gymnasium_env, resolve_task_id
from formats.config import add_dataclass_arguments, save_config
from formats.episodes import MANIFEST, check_manifest, read_manifest
from formats.files import DirectoryLock
from learner.algorithms import ALGORITHMS, make_algorithm
from learner.configs import ServerConfig, TrainConfig
from learner.loop import (
    TrainingLoop,
    build_replay,
    configure_threads,
    open_run,
    resolve_device,
    saved_config,
    seed_everything,
    with_fields,
)
from learner.sources import IngestSource, learner_welcome
from policies.configs import ResidualPolicyConfig
from policies.encoder_files import encoder_identity
from policies.encoders import AUTO_ENCODER, PRETRAINED_PREFIX
from policies.policy_files import load_policy
from policies.random import RandomPolicy

_log = logging.getLogger(__name__)


def make_train_env(config: TrainConfig):
    """The env a run trains and evaluates in: the task's twin, or a gymnasium env."""
    if config.env is not None:
        env = make_gymnasium_env(config.env)
    else:
        env = make_env(config.task, obs_mode=config.obs, image_size=config.image_size)
    return DiscreteGripper(env) if ALGORITHMS[config.algorithm].policy_class.discrete_gripper else env


def given_fields(config_class: type, argv: Sequence[str]) -> frozenset[str]:
    """Dotted names (`steps`, `agent.actor_lr`) of the `config_class` fields whose flags appear in
    `argv`, whatever else it holds (the verb, --out, other configs' flags)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_dataclass_arguments(parser, config_class)
    defaults, _ = parser.parse_known_args([])
    seen = _SeenFlags(vars(defaults))
    parser.parse_known_args(list(argv), seen)
    return frozenset(seen.given)


class _SeenFlags(argparse.Namespace):
    """A namespace that notes what parsing sets in it. It starts with every field present, so that
    argparse fills in no defaults: what it sets afterwards, the command line gave."""

    def __init__(self, fields: Collection[str]) -> None:
        # None, not the defaults: argparse converts a str default it finds unchanged, setting it.
        self.__dict__.update(dict.fromkeys(fields), given=set())

    def __setattr__(self, name: str, value) -> None:
        self.given.add(name)
        super().__setattr__(name, value)


def config_for_resume(config: TrainConfig, out: str | Path, given: Collection[str]) -> TrainConfig:
    """What a --resume command line asks for: the run's saved config, with the fields the user passed
    (`given`, e.g. from given_fields) taken from `config`, the command line's."""
    out = Path(out)
    if config.agent.encoder == AUTO_ENCODER:  # the run saved what auto became: the same request
        given = [name for name in given if name != "agent.encoder"]
    return with_fields(saved_config(out), config, given, out / "config.json")[0]


def prepare_demos(
    config: TrainConfig, out: Path, progress: bool, stop: threading.Event | None = None
) -> Path:
    """The demo directory to load: the given one, or scripted demos recorded into <out>/demos; a run
    that stopped while recording them records only the episodes still missing."""
    if config.demos:
        return Path(config.demos)
    directory = out / "demos"
    have = len(read_manifest(directory)["episodes"]) if (directory / MANIFEST).exists() else 0
    if have >= config.demo_episodes:
        return directory
    from actors.demos import record_scripted

    record_scripted(  # new seeds: it continues the directory's sequence
        config.task,
        config.demo_episodes - have,
        directory,
        seed=10_000 + config.seed,
        obs_mode=config.obs,
        image_size=config.image_size,
        successes_only=True,
        progress=progress,
        stop=stop,  # a stop request ends the recording after its episode; a resume tops it up
    )
    return directory


ENCODER_FILE = "encoder.pt"
EXPLORE_NOISE = 0.5
"""Std of the scripted expert's action noise in the exploration rollouts an auto encoder pretrains
on: arm and object poses the clean demos never show (PickCube's expert still succeeds 80% of the
time at 0.5, so the frames also hold grasps and lifts)."""


def with_auto_encoder(
    config: TrainConfig,
    out: Path,
    device,
    demo_dir: Path | None,
    progress: bool,
    stop: threading.Event | None,
) -> TrainConfig:
    """--agent.encoder auto made concrete: conv (trained by the critic) on a GPU, or for a
    gymnasium env (no scripted expert to roll out); on a CPU, a frozen trunk pretrained on this
    run's own frames, `realrl encoder pretrain`'s recipe: the demos and as many noisy scripted
    rollouts (<out>/explore), written to <out>/encoder.pt. The file is written atomically, so one
    that exists is whole: a run resumed after a stop reuses it. `demo_dir`: the run's checked demos."""
    if device.type == "cuda" or demo_dir is None or config.env is not None:
        return replace(config, agent=replace(config.agent, encoder="conv"))
    model = out / ENCODER_FILE
    if not model.exists():
        from learner.configs import PretrainConfig
        from learner.pretrain import pretrain

        data = (str(demo_dir), str(prepare_exploration(config, out, progress, stop)))
        pretrain_config = PretrainConfig(data, str(model), seed=config.seed, threads=config.threads)
        summary = pretrain(pretrain_config, progress, stop)
        if summary.get("stopped"):
            raise ValueError(
                f"stopped while pretraining the run's encoder ({model} not written): run the same "
                "command with --resume to start over from its recorded frames"
            )
        _log.info(
            "--agent.encoder auto: pretrained %s on %d frames (held-out loss %.4f -> %.4f)",
            model,
            summary["train_frames"],
            summary["held_out_loss_before"],
            summary["held_out_loss_after"],
        )
    agent = replace(config.agent, encoder=f"{PRETRAINED_PREFIX}{model}", encoder_hash=None)
    return with_encoder_identity(replace(config, agent=agent))


def prepare_exploration(
    config: TrainConfig, out: Path, progress: bool, stop: threading.Event | None = None
) -> Path:
    """<out>/explore: `demo_episodes` rollouts of the scripted expert with EXPLORE_NOISE, failures
    kept (an auto encoder's pretraining frames); a stopped recording is topped up, as demos are."""
    directory = out / "explore"
    have = len(read_manifest(directory)["episodes"]) if (directory / MANIFEST).exists() else 0
    if have < config.demo_episodes and not (stop is not None and stop.is_set()):
        from actors.demos import record_scripted

        record_scripted(
            config.task,
            config.demo_episodes - have,
            directory,
            seed=20_000 + config.seed,
            noise=EXPLORE_NOISE,
            obs_mode=config.obs,
            image_size=config.image_size,
            progress=progress,
            stop=stop,
        )
    return directory


def with_encoder_identity(config: TrainConfig) -> TrainConfig:
    """A pretrained:MODEL encoder as the run saves it: the model's absolute path (actor processes
    load the same file) and its content hash (checked on --resume and by every actor). A hash given
    on the command line must be the model's."""
    try:
        encoder, digest = encoder_identity(config.agent.encoder, config.agent.encoder_hash)
    except ValueError as error:
        raise ValueError(f"--agent.encoder-hash: {error}") from error
    return replace(config, agent=replace(config.agent, encoder=encoder, encoder_hash=digest))


def with_base_identity(config: TrainConfig) -> TrainConfig:
    """--base-policy as the run saves it: the model's absolute path and its content hash (a
    --resume, and the residual built over it, refuse another base). A given hash must be its."""
    if config.base_policy is None:
        return config
    path = Path(config.base_policy).expanduser().resolve()
    found = load_policy(path).hash
    if config.base_policy_hash not in (None, found):
        raise ValueError(f"--base-policy-hash {config.base_policy_hash}: the model {path} hashes to {found}")
    return replace(config, base_policy=str(path), base_policy_hash=found)


def residual_settings(config: TrainConfig) -> ResidualPolicyConfig | None:
    if not config.residual:
        return None
    return ResidualPolicyConfig(
        scale=config.residual_scale,
        init_noise=config.residual_noise,
        base=config.base_policy,
        base_hash=config.base_policy_hash,
    )


def run_algorithm(config: TrainConfig, spec, device):
    return make_algorithm(
        config.algorithm, config.agent, spec, device, config.seed, residual_settings(config)
    )


def build_loop(
    config: TrainConfig,
    out: str | Path,
    *,
    server: ServerConfig | None = None,
    on_ready=None,
    resume: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> TrainingLoop:
    """A run's loop: the in-process actor as its step source, or (with `server`) actor processes.
    `stop` (a signal) set while the run's own demos are recorded ends that recording early.
    The loop holds the run directory's lock until its run() ends (see learner.loop.open_run)."""
    out = Path(out)
    if config.actors != 0 and server is None:
        raise ValueError("the in-process actor runs with --actors 0 (or give a server for actor processes)")
    if config.env is None:
        config = replace(config, task=resolve_task_id(config.task))
    if not resume:  # a resumed run keeps the identity it saved; make_encoder checks it
        config = with_base_identity(with_encoder_identity(config))
    config, lock = open_run(config, out, resume)
    try:
        return _build_loop(config, out, lock, server, on_ready, resume, progress, stop)
    except BaseException:
        lock.release()
        raise


def _build_loop(
    config: TrainConfig,
    out: Path,
    lock: DirectoryLock,
    server: ServerConfig | None,
    on_ready,
    resume: bool,
    progress: bool,
    stop: threading.Event | None,
) -> TrainingLoop:
    configure_threads(config.threads, config.actors)
    # A local actor steps its own env; with actor processes this one only evaluates.
    env = make_train_env(config) if server is None else None
    eval_env = make_train_env(config)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    spec = policy_spec(eval_env)
    config, demo_dir, algorithm = _demos_and_algorithm(config, out, eval_env, device, progress, stop)
    replay = build_replay(
        config,
        spec.state_dim,
        spec.action_dim,
        image_shapes(eval_env),
        demo_dir,
        out,
        device,
        algorithm.relabel_demo,
        algorithm.encoder,
    )
    random_steps = config.random_steps
    if random_steps is None:  # without demos, explore uniformly until learning starts
        random_steps = 0 if len(replay.demo) or config.residual else config.learning_starts
    if server is None:
        explore = RandomPolicy(spec, seed=config.seed)
        source = LocalActor(env, replay.online, config.seed, explore, random_steps)
    else:
        welcome = learner_welcome(config, algorithm.policy, random_steps)
        source = IngestSource(config, server, replay.online, out / "replay" / "journal", welcome, on_ready)
    evaluate = Evaluator(eval_env, config.eval_episodes)
    return TrainingLoop(
        config, out, algorithm, replay, source, evaluate, resume=resume, progress=progress, lock=lock
    )


def _demos_and_algorithm(config: TrainConfig, out: Path, eval_env, device, progress: bool, stop):
    """The run's checked demos and its algorithm; with --agent.encoder auto, the config with the
    concrete encoder it got (saved). An encoder model that does not fit the task is refused before
    the demos are recorded; an auto one is pretrained after, on them."""
    spec = policy_spec(eval_env)
    auto_encoder = bool(spec.cameras) and config.agent.encoder == AUTO_ENCODER
    algorithm = None if auto_encoder else run_algorithm(config, spec, device)
    demo_dir = None if config.env else prepare_demos(config, out, progress, stop)
    if demo_dir is not None:  # before anything trains on them
        check_manifest(
            read_manifest(demo_dir),
            demo_dir,
            task=config.task,
            obs_spec=obs_spec(eval_env),
            action_dim=spec.action_dim,
        )
    if auto_encoder:
        config = with_auto_encoder(config, out, device, demo_dir, progress, stop)
        save_config(config, out / "config.json")  # the concrete encoder: what a resume and actors load
        seed_everything(config.seed)
        algorithm = run_algorithm(config, spec, device)
    if spec.cameras and device.type == "cpu" and not algorithm.encoder.frozen_trunk:
        _log.warning(
            "--agent.encoder %s trains a conv net on every batch: ~7 s per update on a 2-core CPU. On a "
            "CPU, leave --agent.encoder at auto (a frozen trunk pretrained on the run's frames) or pass "
            "--agent.encoder pretrained:MODEL (realrl encoder pretrain)",
            config.agent.encoder,
        )
    return config, demo_dir, algorithm


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> dict:
    """`realrl train --actors 0`: the whole run in this process."""
    return build_loop(config, out, resume=resume, progress=progress, stop=stop).run(stop)
