"""The `realrl` command. Each verb has its own subparser (`realrl <verb> --help`); handlers live in
`realrl.commands` and `benchmarks`, imported lazily so `realrl --help` stays instant."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from formats.config import add_dataclass_arguments, dataclass_from_args
from formats.episodes import EpisodeFormatError
from realrl.commands.signals import stop_on_signals


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr, `realrl train: error: argument --obs: invalid choice: ...`,
    and exit status 2: no usage dump burying it (`--help` has the flags). Subparsers are this class
    too (argparse makes them of the parent's type)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _error_line(self.prog, message))


def _error_line(prog: str, message: str) -> str:
    return f"{prog}: error: {' '.join(message.split())}\n"


@dataclass(frozen=True)
class RunDirectory:
    """The --out of `realrl train` and `realrl learner`."""

    out: str = field(metadata={"path": "output_dir"})
    """Run directory."""


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def cmd_demos_record(args: argparse.Namespace) -> None:
    from actors.config import DemoRecordConfig
    from actors.demos import record_scripted, write_contact_sheet

    config = dataclass_from_args(DemoRecordConfig, args)  # checked by main() already
    summary = record_scripted(
        config.task,
        config.episodes,
        config.out,
        seed=config.seed,
        noise=config.noise,
        obs_mode=config.obs,
        image_size=config.image_size,
        randomize=config.randomize,
        successes_only=config.successes_only,
        progress=not args.json,
        stop=args.stop,  # SIGINT/SIGTERM: finish the episode under way, then the summary
    )
    if config.contact_sheet:
        summary["contact_sheet"] = str(write_contact_sheet(config.out, config.contact_sheet))
    _print_result(summary, args.json)


def cmd_demos_info(args: argparse.Namespace) -> None:
    from actors.config import DemoInfoConfig
    from formats.episodes import summarize

    config = dataclass_from_args(DemoInfoConfig, args)
    summary = summarize(config.directory)
    if config.verify:  # every file against the manifest, and the manifest against its task
        from actors.demos import verify_demos

        summary["verified_episodes"] = verify_demos(config.directory)
    _print_result(summary, args.json)


def cmd_demos_sheet(args: argparse.Namespace) -> None:
    from actors.config import DemoSheetConfig
    from actors.demos import write_contact_sheet

    config = dataclass_from_args(DemoSheetConfig, args)
    print(write_contact_sheet(config.directory, config.out, max_episodes=config.episodes))


def _train_config(args: argparse.Namespace):
    """The run's config: the flags over their preset's values, or with --resume the saved config
    with the flags given again."""
    from learner.configs import TrainConfig
    from learner.presets import with_preset
    from realrl.commands.train import config_for_resume, given_fields

    config, given = dataclass_from_args(TrainConfig, args), given_fields(TrainConfig, args.argv)
    if args.resume:
        return config_for_resume(config, args.out, given)
    return with_preset(config, given)


def cmd_train(args: argparse.Namespace) -> None:
    from realrl.commands.learner import train_with_actors
    from realrl.commands.train import train

    config = _train_config(args)
    run = train_with_actors if config.actors > 0 else train
    summary = run(config, args.out, resume=args.resume, progress=not args.json, stop=args.stop)
    _print_result(summary, args.json)


def cmd_learner(args: argparse.Namespace) -> None:
    from learner.configs import ServerConfig
    from realrl.commands.learner import run_learner

    config = _train_config(args)
    server = dataclass_from_args(ServerConfig, args)
    summary = run_learner(
        config, args.out, server, resume=args.resume, progress=not args.json, stop=args.stop
    )
    _print_result(summary, args.json)


def cmd_actor(args: argparse.Namespace) -> None:
    from actors.actor import Actor
    from actors.config import ActorConfig

    actor = Actor(dataclass_from_args(ActorConfig, args))
    summary = actor.run(args.stop)
    print(json.dumps(summary), flush=True)  # the one final JSON line (stdout) that scripts read
    if "error" in summary:  # refused by the learner, or the link died: the accounting above still holds
        raise ValueError(summary["error"])


def cmd_bench_sim(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchSimConfig
    from benchmarks.sim import run

    c = dataclass_from_args(BenchSimConfig, args)
    _print_result(run(c.task, steps=c.steps, repeats=c.repeats, image_size=c.image_size), args.json)


def cmd_bench_learner(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchLearnerConfig, shape_kwargs
    from benchmarks.learner import run

    c = dataclass_from_args(BenchLearnerConfig, args)
    state_dim, action_dim = c.state_dim, c.action_dim
    if state_dim is None or action_dim is None:
        from envs import make_env

        env = make_env(c.task, obs_mode=c.obs, image_size=c.image_size)
        state_dim = state_dim or env.observation_space["state"].shape[0]
        action_dim = action_dim or env.action_space.shape[0]
        env.close()
    result = run(
        **shape_kwargs(c), state_dim=state_dim, action_dim=action_dim, critic_impl=c.critic_impl, utd=c.utd
    )
    _print_result({"task": c.task, **result}, args.json)


def cmd_bench_actor(args: argparse.Namespace) -> None:
    from benchmarks.actor import run
    from benchmarks.configs import BenchActorConfig
    from formats.config import to_dict

    _print_result(run(**to_dict(dataclass_from_args(BenchActorConfig, args))), args.json)


def cmd_bench_encoder(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchEncoderConfig
    from benchmarks.encoder_probe import run
    from formats.config import to_dict

    _print_result(run(**to_dict(dataclass_from_args(BenchEncoderConfig, args))), args.json)


def cmd_bench_transport(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchTransportConfig
    from benchmarks.transport import run

    c = dataclass_from_args(BenchTransportConfig, args)
    result = run(
        senders=c.senders,
        steps_per_sender=c.steps,
        repeats=c.repeats,
        actors=c.actors,
        weights_mb=c.weights_mb,
        pushes=c.pushes,
        send_steps=c.send_steps,
        image_size=c.image_size,
    )
    _print_result(result, args.json)


def cmd_bench_learning(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchLearningConfig
    from benchmarks.learning import run, table

    c = dataclass_from_args(BenchLearningConfig, args)
    out = Path(c.out) / c.suite
    report = run(c.suite, out, seeds=c.seeds, tasks=c.tasks, jobs=c.jobs, progress=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print(table(report))
        print(f"curves: {report['plot']}  report: {out / (c.suite + '.json')}")


def cmd_bench_residual(args: argparse.Namespace) -> None:
    from benchmarks.configs import BenchResidualConfig
    from benchmarks.residual import run, table

    c = dataclass_from_args(BenchResidualConfig, args)
    report = run(c, progress=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print(table(report))
        print(f"curves: {report['plot']}  report: {Path(c.out) / 'residual.json'}")


def cmd_encoder_pretrain(args: argparse.Namespace) -> None:
    from learner.configs import PretrainConfig
    from learner.pretrain import pretrain

    summary = pretrain(dataclass_from_args(PretrainConfig, args), progress=not args.json)
    _print_result(summary, args.json)


def cmd_bc_train(args: argparse.Namespace) -> None:
    from learner.bc import train_bc
    from learner.configs import BCTrainConfig

    config = dataclass_from_args(BCTrainConfig, args)
    summary = train_bc(config, progress=not args.json, stop=args.stop)  # Ctrl-C: nothing written
    _print_result(summary, args.json)


def cmd_validate(args: argparse.Namespace) -> int:
    from actors.config import ValidateConfig
    from actors.validation import validate

    validated = validate(dataclass_from_args(ValidateConfig, args), progress=not args.json)
    _print_result(validated.summary, args.json)
    for failure in validated.summary["thresholds_failed"]:
        print(f"realrl validate: threshold missed: {failure}", file=sys.stderr)
    return 0 if validated.passed else 1


def cmd_keys_generate(args: argparse.Namespace) -> None:
    from realrl.commands.keys import KeysConfig, generate_keys

    config = dataclass_from_args(KeysConfig, args)
    _print_result(generate_keys(config.directory, config.name), args.json)


def _verb(verbs, name: str, config: type | None, handler, **kwargs) -> argparse.ArgumentParser:
    """A (sub)verb whose flags are `config`'s fields (formats.config), plus --json."""
    parser = verbs.add_parser(name, **kwargs)
    if config is not None:
        add_dataclass_arguments(parser, config)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _handle(parser, handler, () if config is None else (config,))
    return parser


def _handle(parser: argparse.ArgumentParser, handler, configs: tuple[type, ...]) -> None:
    """`handler` runs the verb; `configs` (whose flags the parser has) are checked before it does."""
    parser.set_defaults(handler=handler, _configs=configs, _prog=parser.prog)


def _check_configs(args: argparse.Namespace) -> str | None:
    """Build every config of the verb once before its handler runs, so that a value out of range, a
    missing key file or a broken rule across flags is one error line, and nothing is created on disk."""
    for config in args._configs:
        try:
            dataclass_from_args(config, args)
        except ValueError as error:
            return _error_line(args._prog, str(error))
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="realrl",
        description="Real-robot RL on the SERL pattern: MuJoCo sim twins, demos, benchmarks.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)

    from actors.config import DemoInfoConfig, DemoRecordConfig, DemoSheetConfig

    demos = verbs.add_parser("demos", help="record and inspect demonstration datasets")
    demo_verbs = demos.add_subparsers(dest="demos_verb", metavar="<action>", required=True)
    record_help = "record demos into a directory (appends if it exists)"
    _verb(demo_verbs, "record", DemoRecordConfig, cmd_demos_record, help=record_help, description=record_help)
    _verb(demo_verbs, "info", DemoInfoConfig, cmd_demos_info, help="summarise a demo directory")
    sheet_help = "write a contact sheet PNG of a pixel demo directory"
    _verb(demo_verbs, "sheet", DemoSheetConfig, cmd_demos_sheet, help=sheet_help)

    train = verbs.add_parser(
        "train",
        help="train on a sim twin task from demos (RLPD SAC)",
        description="RLPD soft actor-critic on a sim twin task, mixing scripted demos with online data. "
        "Writes config.json, metrics.jsonl, learning_curve.png and checkpoints/ into --out.",
    )
    add_dataclass_arguments(train, RunDirectory)
    train.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest")
    train.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    from learner.configs import TrainConfig

    add_dataclass_arguments(train, TrainConfig)
    _handle(train, cmd_train, (RunDirectory, TrainConfig))

    learner = verbs.add_parser(
        "learner",
        help="the learner process (GPU box): serve actors over ZeroMQ, train, push weights",
        description="RLPD learner fed by `realrl actor` processes over ZeroMQ. Takes the same task, demo and "
        "agent flags as `realrl train`, plus where to bind and the CURVE keys. Acks a step only once it is "
        "journaled (survives a SIGKILL); SIGINT/SIGTERM checkpoints and exits 0; --resume continues.",
    )
    add_dataclass_arguments(learner, RunDirectory)
    learner.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoints/latest + journal"
    )
    learner.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    from learner.configs import ServerConfig

    add_dataclass_arguments(learner, ServerConfig)
    add_dataclass_arguments(learner, TrainConfig)
    _handle(learner, cmd_learner, (RunDirectory, ServerConfig, TrainConfig))

    actor = verbs.add_parser(
        "actor",
        help="an actor process (robot PC): act with the learner's policy, stream steps to it",
        description="Steps the env with the newest weights from the learner and streams every step to it. "
        "Unacked steps wait in an on-disk spool (resent after a reconnect or a restart). SIGINT/SIGTERM "
        "stops acting, waits (bounded) for the last acks and prints one JSON line: actor_id, session, "
        "steps_recorded = steps_acked + steps_spooled + steps_dropped. A full spool holds the robot "
        "still until acks free room (--on-spool-full). Exit 2 when the learner refuses this actor.",
    )
    actor.add_argument("--json", action="store_true", help="(the final line is always JSON)")
    from actors.config import ActorConfig

    add_dataclass_arguments(actor, ActorConfig)
    _handle(actor, cmd_actor, (ActorConfig,))

    from learner.configs import PretrainConfig

    encoder = verbs.add_parser("encoder", help="pretrain a frozen image encoder on a task's own frames")
    encoder_verbs = encoder.add_subparsers(dest="encoder_verb", metavar="<action>", required=True)
    _verb(
        encoder_verbs,
        "pretrain",
        PretrainConfig,
        cmd_encoder_pretrain,
        help="train a frame trunk as a deep spatial autoencoder, for --agent.encoder pretrained:MODEL",
        description="Self-supervised, on the camera frames of episode directories (demos plus "
        "exploration, e.g. `realrl demos record --obs pixels --noise 0.5`): a spatial softmax turns the "
        "trunk's maps into keypoints that must rebuild a downsampled frame (Finn et al., 2016). Prints "
        "the held-out loss before and after, and the model's hash. --steps 0 writes the untrained trunk "
        "(the random-weight baseline).",
    )

    from learner.configs import BCTrainConfig

    bc = verbs.add_parser("bc", help="behaviour cloning: train a policy on demos (a base for residual RL)")
    bc_verbs = bc.add_subparsers(dest="bc_verb", metavar="<action>", required=True)
    _verb(
        bc_verbs,
        "train",
        BCTrainConfig,
        cmd_bc_train,
        help="fit a gaussian, chunk or shortcut policy on a demo directory and write a MODEL file",
        description="Behaviour cloning on the demos' steps, with a held-out split by episode: prints "
        "the training and held-out loss, the held-out action error and the model's hash, and writes "
        "MODEL (its spec, normalisation, policy type and content hash) and a loss curve beside it. "
        "On pixel demos give a frozen trunk (--model.encoder pretrained:MODEL): its maps are computed "
        "once per frame.",
    )

    from actors.config import ValidateConfig

    _verb(
        verbs,
        "validate",
        ValidateConfig,
        cmd_validate,
        help="the gate before hardware: roll a policy out in the sim twin, fail below thresholds",
        description="Rolls --episodes episodes of a policy (a MODEL file, --checkpoint RUN_DIR's latest, "
        "random or the scripted expert) in the task's sim twin through the actor's composition, the "
        "in-training evaluation's code path (--randomize: domain randomisation). Prints episodes, "
        "success_rate, violations, violation_episodes, mean_return and p99_step_ms (policy + sim step), "
        "writes a report PNG, and exits 1 when a given threshold (--min-success, "
        "--max-violation-episodes) is missed, 2 on bad input.",
    )

    from realrl.commands.keys import KeysConfig

    keys = verbs.add_parser("keys", help="CURVE key pairs for encrypted, allow-listed actor/learner traffic")
    key_verbs = keys.add_subparsers(dest="keys_verb", metavar="<action>", required=True)
    _verb(
        key_verbs,
        "generate",
        KeysConfig,
        cmd_keys_generate,
        help="write NAME.key (public) and NAME.key_secret (owner-only) into DIRECTORY",
        description="Make a CURVE key pair in pyzmq's certificate format. Give the learner's public key "
        "to every actor, and put each allowed actor's public NAME.key into the learner's allow-list "
        "directory. Existing keys are never overwritten.",
    )

    from benchmarks.configs import (
        BenchActorConfig,
        BenchEncoderConfig,
        BenchLearnerConfig,
        BenchLearningConfig,
        BenchResidualConfig,
        BenchSimConfig,
        BenchTransportConfig,
    )

    bench = verbs.add_parser("bench", help="speed benchmarks; each prints one JSON object with --json")
    bench_verbs = bench.add_subparsers(dest="bench_verb", metavar="<what>", required=True)
    _verb(
        bench_verbs,
        "sim",
        BenchSimConfig,
        cmd_bench_sim,
        help="env steps/s of the sim twin, state and pixels mode",
    )
    _verb(
        bench_verbs,
        "learner",
        BenchLearnerConfig,
        cmd_bench_learner,
        help="learner updates/s: replay sampling + RLPD critic/actor/temperature update",
        description="Times the learner's loop body (sample a 50/50 batch from uint8 replay filled with "
        "synthetic data, move it to the device, one critic + actor + temperature update). Shapes "
        "come from --task unless --state-dim/--action-dim override them.",
    )
    _verb(
        bench_verbs,
        "actor",
        BenchActorConfig,
        cmd_bench_actor,
        help="actor latency: the policy's decision and the whole control step, p50/p99 ms",
        description="Runs the policy an actor process runs (its composition and --threads) in the task's "
        "twin: policy_p50_ms/policy_p99_ms time the decision (frames -> encoder -> actor -> bounded "
        "action), step_p99_ms the decision plus the env step with rendering.",
    )
    _verb(
        bench_verbs,
        "encoder",
        BenchEncoderConfig,
        cmd_bench_encoder,
        help="how well a frozen encoder sees the objects: held-out R^2 of their true positions",
        description="Rolls out the twin's noisy scripted expert and fits ridge probes from the trunk's maps "
        "and keypoints to the objects' true positions (privileged state, used only to evaluate), for the "
        "model and for an untrained trunk of its shape; prints held-out R^2 per object and read-out.",
    )
    _verb(
        bench_verbs,
        "transport",
        BenchTransportConfig,
        cmd_bench_transport,
        help="actor/learner link on loopback: ingest steps/s, weight-push latency, send cost",
        description="Real LearnerServer, journal, replay buffer and ActorTransport on loopback ZeroMQ. "
        "ingest_steps_per_s: sender processes stream step records with two camera frames (median of "
        "--repeats); weight_push_p99_ms: a policy of --weights-mb pushed --pushes times to --actors actor "
        "processes; send_overhead_p99_ms: the control loop's cost per step while the transport works.",
    )
    _verb(
        bench_verbs,
        "learning",
        BenchLearningConfig,
        cmd_bench_learning,
        help="learning results: a suite of tasks trained and compared with published SAC (hours)",
        description="Trains every task of --suite with `realrl train` (its preset plus the suite's flags), "
        "evaluating on a fixed schedule, and prints per task the eval return (control) or success (robot) "
        "at fixed env-step budgets next to the reference, plus <out>/<suite>/<suite>.png (curves) and "
        "<suite>.json. An interrupted suite continues where it stopped when run again.",
    )
    _verb(
        bench_verbs,
        "residual",
        BenchResidualConfig,
        cmd_bench_residual,
        help="residual RL over a weak BC base vs RLPD from scratch: env steps to 90% success (hours)",
        description="Records --demos scripted demos, trains a weak BC base on them (`realrl bc train`), "
        "validates it, then trains residual RL over it and RLPD from scratch with the same demos, budget "
        "and seeds (`realrl train`), and prints when each first reached 90% success, the ratio of the "
        "medians (bar: <= 0.5) and <out>/residual.png (curves, the base as a line) and residual.json. "
        "What exists is read back and stopped runs are resumed, so an interrupted benchmark continues.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # a bad flag: one line (_Parser.error), exit status 2
    except SystemExit as stop:  # or --help: 0
        return int(stop.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --resume: which flags were given again
    error = _check_configs(args)
    if error:
        sys.stderr.write(error)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verb in ("learner", "actor", "train") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        with _stop_requests(args) as args.stop:  # None for the verbs that just stop
            code = args.handler(args)  # None, or a verb's own exit status (validate: thresholds)
    except KeyboardInterrupt:  # a second Ctrl-C, or one in a verb that has nothing to finish
        print("realrl: interrupted", file=sys.stderr)
        return 130
    except (
        ValueError,
        EpisodeFormatError,
        RuntimeError,
        OSError,
    ) as error:  # TrainingError is a RuntimeError
        print(f"realrl: error: {error}", file=sys.stderr)
        return 2
    return code or 0


def _stop_requests(args: argparse.Namespace):
    """Long-running verbs take SIGINT/SIGTERM as a request to finish cleanly (exit 0), from before
    they build anything; the others just stop (exit 130)."""
    long_running = args.verb in ("train", "learner", "actor") or getattr(args, "demos_verb", None) == "record"
    return stop_on_signals() if long_running else contextlib.nullcontext(None)


if __name__ == "__main__":
    sys.exit(main())
