"""The `realrl` command. Each verb has its own subparser (`realrl <verb> --help`); handlers live in
`realrl.commands` and `benchmarks`, imported lazily so `realrl --help` stays instant."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from formats.episodes import EpisodeFormatError

SOURCES = ("scripted",)  # teleop sources arrive with the interventions work


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def cmd_demos_record(args: argparse.Namespace) -> None:
    from realrl.commands.demos import record_scripted, write_contact_sheet

    if args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if args.noise < 0:
        raise ValueError("--noise must be >= 0")
    if args.contact_sheet and args.obs != "pixels":
        raise ValueError("--contact-sheet needs camera frames: use --obs pixels")
    summary = record_scripted(
        args.task,
        args.episodes,
        args.out,
        seed=args.seed,
        noise=args.noise,
        obs_mode=args.obs,
        image_size=args.image_size,
        randomize=args.randomize,
        successes_only=args.successes_only,
        progress=not args.json,
    )
    if args.contact_sheet:
        summary["contact_sheet"] = str(write_contact_sheet(args.out, args.contact_sheet))
    _print_result(summary, args.json)


def cmd_demos_info(args: argparse.Namespace) -> None:
    from formats.episodes import iter_episodes, summarize

    summary = summarize(args.directory)
    if args.verify:
        summary["verified_episodes"] = sum(1 for _ in iter_episodes(args.directory))
    _print_result(summary, args.json)


def cmd_demos_sheet(args: argparse.Namespace) -> None:
    from realrl.commands.demos import write_contact_sheet

    print(write_contact_sheet(args.directory, args.out, max_episodes=args.episodes))


def cmd_train(args: argparse.Namespace) -> None:
    from formats.config import dataclass_from_args
    from learner.configs import TrainConfig
    from realrl.commands.train import train

    config = dataclass_from_args(TrainConfig, args)
    if config.actors > 0:
        from realrl.commands.learner import train_with_actors

        summary = train_with_actors(config, args.out, resume=args.resume, progress=not args.json)
    else:
        summary = train(config, args.out, resume=args.resume, progress=not args.json)
    _print_result(summary, args.json)


def cmd_learner(args: argparse.Namespace) -> None:
    from formats.config import dataclass_from_args
    from learner.configs import ServerConfig, TrainConfig
    from realrl.commands.learner import run_learner

    config = dataclass_from_args(TrainConfig, args)
    server = dataclass_from_args(ServerConfig, args)
    summary = run_learner(config, args.out, server, resume=args.resume, progress=not args.json)
    _print_result(summary, args.json)


def cmd_actor(args: argparse.Namespace) -> None:
    from actors.actor import Actor
    from actors.config import ActorConfig
    from formats.config import dataclass_from_args
    from realrl.commands.signals import stop_on_signals

    actor = Actor(dataclass_from_args(ActorConfig, args))
    with stop_on_signals() as stop:
        summary = actor.run(stop)
    print(json.dumps(summary), flush=True)  # the one final JSON line (stdout) that scripts read


def cmd_bench_sim(args: argparse.Namespace) -> None:
    from benchmarks.sim import run

    _print_result(
        run(args.task, steps=args.steps, repeats=args.repeats, image_size=args.image_size), args.json
    )


def cmd_bench_learner(args: argparse.Namespace) -> None:
    from benchmarks.flags import shape_kwargs
    from benchmarks.learner import run

    state_dim, action_dim = args.state_dim, args.action_dim
    if state_dim is None or action_dim is None:
        from envs import make_env

        env = make_env(args.task, obs_mode=args.obs, image_size=args.image_size)
        state_dim = state_dim or env.observation_space["state"].shape[0]
        action_dim = action_dim or env.action_space.shape[0]
        env.close()
    result = run(
        **shape_kwargs(args), state_dim=state_dim, action_dim=action_dim, critic_impl=args.critic_impl
    )
    _print_result({"task": args.task, **result}, args.json)


def cmd_bench_transport(args: argparse.Namespace) -> None:
    from benchmarks.transport import run

    result = run(
        senders=args.senders,
        steps_per_sender=args.steps,
        repeats=args.repeats,
        actors=args.actors,
        weights_mb=args.weights_mb,
        pushes=args.pushes,
        send_steps=args.send_steps,
        image_size=args.image_size,
    )
    _print_result(result, args.json)


def cmd_keys_generate(args: argparse.Namespace) -> None:
    from realrl.commands.keys import generate_keys

    _print_result(generate_keys(args.directory, args.name), args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realrl",
        description="Real-robot RL on the SERL pattern: MuJoCo sim twins, demos, benchmarks.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)

    demos = verbs.add_parser("demos", help="record and inspect demonstration datasets")
    demo_verbs = demos.add_subparsers(dest="demos_verb", metavar="<action>", required=True)
    record = demo_verbs.add_parser("record", help="record demos into a directory (appends if it exists)")
    record.add_argument("--task", required=True, help="task id (realrl/PickCube-v0) or short name (PickCube)")
    record.add_argument(
        "--source",
        choices=SOURCES,
        default="scripted",
        help="who acts: 'scripted' = the twin's privileged-state expert",
    )
    record.add_argument("--episodes", type=int, required=True, help="episodes to record")
    record.add_argument(
        "--out", required=True, help="demo directory (created; appended to if it holds the task)"
    )
    record.add_argument(
        "--seed", type=int, default=0, help="seed of the first episode; episode k uses seed+k"
    )
    record.add_argument(
        "--noise", type=float, default=0.0, help="std of Gaussian action noise (sub-optimal demos)"
    )
    record.add_argument(
        "--obs",
        choices=("state", "pixels"),
        default="pixels",
        help="observation mode stored in the files (pixels keeps uint8 camera frames)",
    )
    record.add_argument("--image-size", type=int, default=128, help="square camera frame size in pixels")
    record.add_argument(
        "--randomize",
        action="store_true",
        help="full domain randomisation (colours, lighting, friction, mass, camera jitter)",
    )
    record.add_argument("--successes-only", action="store_true", help="keep only successful episodes")
    record.add_argument("--contact-sheet", metavar="PNG", help="also write a contact sheet of camera frames")
    record.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    record.set_defaults(handler=cmd_demos_record)

    info = demo_verbs.add_parser("info", help="summarise a demo directory")
    info.add_argument("directory")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--verify", action="store_true", help="also load every file and check its checksum")
    info.set_defaults(handler=cmd_demos_info)

    sheet = demo_verbs.add_parser("sheet", help="write a contact sheet PNG of a pixel demo directory")
    sheet.add_argument("directory")
    sheet.add_argument("--out", required=True, metavar="PNG")
    sheet.add_argument("--episodes", type=int, default=4, help="rows (episodes) on the sheet")
    sheet.set_defaults(handler=cmd_demos_sheet)

    train = verbs.add_parser(
        "train",
        help="train on a sim twin task from demos (RLPD SAC)",
        description="RLPD soft actor-critic on a sim twin task, mixing scripted demos with online data. "
        "Writes config.json, metrics.jsonl, learning_curve.png and checkpoints/ into --out.",
    )
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest")
    train.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    from formats.config import add_dataclass_arguments
    from learner.configs import TrainConfig

    add_dataclass_arguments(train, TrainConfig)
    train.set_defaults(handler=cmd_train)

    learner = verbs.add_parser(
        "learner",
        help="the learner process (GPU box): serve actors over ZeroMQ, train, push weights",
        description="RLPD learner fed by `realrl actor` processes over ZeroMQ. Takes the same task, demo and "
        "agent flags as `realrl train`, plus where to bind and the CURVE keys. Acks a step only once it is "
        "journaled (survives a SIGKILL); SIGINT/SIGTERM checkpoints and exits 0; --resume continues.",
    )
    learner.add_argument("--out", required=True, help="run directory")
    learner.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoints/latest + journal"
    )
    learner.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    from learner.configs import ServerConfig

    add_dataclass_arguments(learner, ServerConfig)
    add_dataclass_arguments(learner, TrainConfig)
    learner.set_defaults(handler=cmd_learner)

    actor = verbs.add_parser(
        "actor",
        help="an actor process (robot PC): act with the learner's policy, stream steps to it",
        description="Steps the env with the newest weights from the learner and streams every step to it. "
        "Unacked steps wait in an on-disk spool (resent after a reconnect or a restart). SIGINT/SIGTERM "
        "stops acting, waits (bounded) for the last acks and prints one JSON line: actor_id, session, "
        "steps_recorded, steps_acked, steps_spooled.",
    )
    actor.add_argument("--json", action="store_true", help="(the final line is always JSON)")
    from actors.config import ActorConfig

    add_dataclass_arguments(actor, ActorConfig)
    actor.set_defaults(handler=cmd_actor)

    keys = verbs.add_parser("keys", help="CURVE key pairs for encrypted, allow-listed actor/learner traffic")
    key_verbs = keys.add_subparsers(dest="keys_verb", metavar="<action>", required=True)
    generate = key_verbs.add_parser(
        "generate",
        help="write NAME.key (public) and NAME.key_secret (owner-only) into DIRECTORY",
        description="Make a CURVE key pair in pyzmq's certificate format. Give the learner's public key "
        "to every actor, and put each allowed actor's public NAME.key into the learner's allow-list "
        "directory. Existing keys are never overwritten.",
    )
    generate.add_argument("directory")
    generate.add_argument("--name", required=True, help="key name, e.g. learner or robot-1")
    generate.add_argument("--json", action="store_true", help="print the paths as one JSON object")
    generate.set_defaults(handler=cmd_keys_generate)

    bench = verbs.add_parser("bench", help="speed benchmarks; each prints one JSON object with --json")
    bench_verbs = bench.add_subparsers(dest="bench_verb", metavar="<what>", required=True)
    bench_sim = bench_verbs.add_parser("sim", help="env steps/s of the sim twin, state and pixels mode")
    bench_sim.add_argument("--task", default="PickCube")
    bench_sim.add_argument("--steps", type=int, default=1000, help="env steps per timed run")
    bench_sim.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    bench_sim.add_argument("--image-size", type=int, default=128)
    bench_sim.add_argument("--json", action="store_true", help="print one JSON object")
    bench_sim.set_defaults(handler=cmd_bench_sim)

    bench_learner = bench_verbs.add_parser(
        "learner",
        help="learner updates/s: replay sampling + RLPD critic/actor/temperature update",
        description="Times the learner's loop body (sample a 50/50 batch from uint8 replay filled with "
        "synthetic data, move it to the device, one critic + actor + temperature update). Shapes "
        "come from --task unless --state-dim/--action-dim override them.",
    )
    bench_learner.add_argument("--task", default="PickCube", help="task whose state/action shapes to use")
    from benchmarks.flags import add_shape_arguments

    add_shape_arguments(bench_learner)
    bench_learner.add_argument("--state-dim", type=int, help="override the task's state dimension")
    bench_learner.add_argument("--action-dim", type=int, help="override the task's action dimension")
    bench_learner.add_argument(
        "--critic-impl", choices=("auto", "vectorized", "loop"), default="auto", help="critic ensemble kind"
    )
    bench_learner.add_argument("--json", action="store_true", help="print one JSON object")
    bench_learner.set_defaults(handler=cmd_bench_learner)

    bench_transport = bench_verbs.add_parser(
        "transport",
        help="actor/learner link on loopback: ingest steps/s, weight-push latency, send cost",
        description="Real LearnerServer, journal, replay buffer and ActorTransport on loopback ZeroMQ. "
        "ingest_steps_per_s: sender processes stream step records with two camera frames (median of "
        "--repeats); weight_push_p99_ms: a policy of --weights-mb pushed --pushes times to --actors actor "
        "processes; send_overhead_p99_ms: the control loop's cost per step while the transport works.",
    )
    bench_transport.add_argument("--senders", type=int, default=2, help="sender processes for the ingest run")
    bench_transport.add_argument("--steps", type=int, default=3000, help="step records per sender per run")
    bench_transport.add_argument("--repeats", type=int, default=3, help="ingest runs; the median is reported")
    bench_transport.add_argument("--actors", type=int, default=4, help="actor processes receiving weights")
    bench_transport.add_argument("--weights-mb", type=float, default=10, help="policy size in MB")
    bench_transport.add_argument("--pushes", type=int, default=40, help="weight pushes (0.25 s apart)")
    bench_transport.add_argument("--send-steps", type=int, default=1000, help="steps timed at 100 Hz")
    bench_transport.add_argument(
        "--image-size", type=int, default=128, help="square camera frames, 2 cameras"
    )
    bench_transport.add_argument("--json", action="store_true", help="print one JSON object")
    bench_transport.set_defaults(handler=cmd_bench_transport)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verb in ("learner", "actor", "train") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        args.handler(args)
    except (
        ValueError,
        EpisodeFormatError,
        RuntimeError,
        OSError,
    ) as error:  # TrainingError is a RuntimeError
        print(f"realrl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
