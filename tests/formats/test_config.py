from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import pytest

from formats.config import (
    add_dataclass_arguments,
    dataclass_from_args,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


@dataclass(frozen=True)
class CameraConfig:
    size: tuple[int, int] = (84, 84)
    """Image height and width in pixels."""
    names: tuple[str, ...] = ("front", "wrist")
    """Cameras to read."""


@dataclass(frozen=True)
class SimConfig:
    control_hz: float = 10.0
    """Control rate of the sim twin, in Hz."""
    randomize: bool = True
    """Domain randomisation of lights, textures and masses."""
    camera: CameraConfig = field(default_factory=CameraConfig)


@dataclass  # not frozen on purpose: both kinds must work
class TrainConfig:
    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update,
    half of them demonstrations."""
    task: str = "pick_cube"
    """Registered task name."""
    use_demos: bool = True
    """Mix demonstrations into each batch."""
    compile: bool = False
    """Compile the networks with torch.compile."""
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    """Hidden-layer activation."""
    utd: Literal[1, 2, 4] = 1
    seed: int | None = None
    """Random seed; none draws one."""
    checkpoint: Optional[str] = "runs/latest"  # noqa: UP045 -- typing.Optional must work too
    """Checkpoint to resume from."""
    clip: float | None = 10.0
    """Gradient-norm clip; none turns it off. 100% of grads are clipped above it."""
    encoder: Literal["resnet10", "cnn"] | None = "cnn"
    """Image encoder; none for state only."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths."""
    action_scale: tuple[float, ...] = (1.0, 1.0, 0.5)
    """Per-dimension action scale."""
    crop: tuple[int, float] = (4, 0.5)
    """Random-shift pad in pixels and the probability of applying it."""
    crop_box: tuple[int, int] | None = None
    """Fixed crop height and width; none keeps the full frame."""
    margin: float = field(default=0.05, metadata={"help": "Safety margin in metres."})
    sim: SimConfig = field(default_factory=lambda: SimConfig(control_hz=20.0))


def make_parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train")
    add_dataclass_arguments(parser, TrainConfig, **kwargs)
    return parser


def parse(argv: list[str], **kwargs) -> TrainConfig:
    return dataclass_from_args(TrainConfig, make_parser(**kwargs).parse_args(argv))


def flat_help(parser: argparse.ArgumentParser, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    return " ".join(parser.format_help().split())


def test_no_flags_gives_the_dataclass_defaults():
    config = parse([])
    assert config == TrainConfig()
    assert config.sim == SimConfig(control_hz=20.0)  # the field's default_factory, not SimConfig()
    assert config.lr == 3e-4 and config.seed is None and config.crop_box is None


def test_every_type_parses_to_exact_values():
    argv = [
        "--lr", "1e-3",
        "--batch-size", "64",
        "--task", "peg_insert",
        "--no-use-demos",
        "--compile",
        "--activation", "gelu",
        "--utd", "4",
        "--seed", "7",
        "--checkpoint", "none",
        "--clip", "NONE",
        "--encoder", "resnet10",
        "--hidden", "512", "512", "256",
        "--action-scale", "0.1", "0.2",
        "--crop", "8", "0.25",
        "--crop-box", "96", "128",
        "--margin", "0.1",
        "--sim.control-hz", "15",
        "--no-sim.randomize",
        "--sim.camera.size", "64", "48",
        "--sim.camera.names", "top",
    ]  # fmt: skip
    config = parse(argv)
    assert config == TrainConfig(
        lr=1e-3,
        batch_size=64,
        task="peg_insert",
        use_demos=False,
        compile=True,
        activation="gelu",
        utd=4,
        seed=7,
        checkpoint=None,
        clip=None,
        encoder="resnet10",
        hidden=(512, 512, 256),
        action_scale=(0.1, 0.2),
        crop=(8, 0.25),
        crop_box=(96, 128),
        margin=0.1,
        sim=SimConfig(control_hz=15.0, randomize=False, camera=CameraConfig(size=(64, 48), names=("top",))),
    )
    # Exact types, not just equal values: 4 is the int Literal value, tuples are tuples.
    assert type(config.utd) is int and type(config.batch_size) is int
    assert type(config.crop[0]) is int and type(config.crop[1]) is float
    assert isinstance(config.hidden, tuple) and isinstance(config.sim.camera.names, tuple)


def test_some_flags_leave_the_others_at_their_defaults():
    config = parse(["--lr", "0.01", "--sim.camera.names"])
    assert config == dataclasses.replace(
        TrainConfig(),
        lr=0.01,
        sim=SimConfig(control_hz=20.0, camera=CameraConfig(names=())),
    )


def test_bool_flags_go_both_ways():
    assert parse(["--use-demos"]).use_demos is True
    assert parse(["--no-use-demos"]).use_demos is False
    assert parse(["--no-compile"]).compile is False
    assert parse(["--compile"]).compile is True
    assert parse(["--sim.randomize"]).sim.randomize is True
    assert parse(["--no-sim.randomize"]).sim.randomize is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--activation", "swish"],
        ["--activation", "none"],  # only an optional Literal takes none
        ["--utd", "3"],
        ["--encoder", "vit"],
        ["--batch-size", "6.5"],
        ["--seed", "seven"],
        ["--crop", "8"],  # two values needed
        ["--crop", "8", "0.5", "1"],
        ["--crop", "8.5", "0.5"],  # first is an int
        ["--hidden", "256", "wide"],
        ["--crop-box", "96"],
        ["--crop-box", "none", "none"],
        ["--sim.control-hz", "fast"],
        ["--use-demos", "yes"],
    ],
)
def test_bad_values_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_literal_error_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        parse(["--activation", "swish"])
    err = capsys.readouterr().err
    assert "invalid choice: 'swish'" in err and "relu, gelu, tanh" in err


def test_optional_takes_none_or_a_value():
    assert parse(["--seed", "none"]).seed is None
    assert parse(["--seed", "-3"]).seed == -3
    assert parse(["--clip", "2.5"]).clip == 2.5
    assert parse(["--encoder", "none"]).encoder is None
    assert parse(["--checkpoint", "runs/a"]).checkpoint == "runs/a"
    assert parse(["--crop-box", "none"]).crop_box is None
    assert parse(["--crop-box", "32", "48"]).crop_box == (32, 48)


def test_help_shows_docstrings_defaults_and_flag_forms(monkeypatch):
    text = flat_help(make_parser(), monkeypatch)
    assert "--lr FLOAT Adam learning rate. (default: 0.0003)" in text
    assert "Transitions per update, half of them demonstrations. (default: 256)" in text  # 2-line doc
    assert "--use-demos, --no-use-demos Mix demonstrations into each batch. (default: True)" in text
    assert "--activation {relu,gelu,tanh} Hidden-layer activation. (default: relu)" in text
    assert "--utd {1,2,4} (default: 1)" in text  # no help text, still a flag
    assert "--seed INT|none Random seed; none draws one. (default: none)" in text
    assert "100% of grads are clipped above it. (default: 10.0)" in text  # % is not a format
    assert "--hidden [INT ...] Hidden layer widths. (default: 256 256)" in text
    assert "--crop INT FLOAT Random-shift pad" in text
    assert "--crop-box VALUE [VALUE ...] Fixed crop height and width; none keeps the full frame." in text
    assert "keeps the full frame. Takes INT INT or none. (default: none)" in text
    assert "Safety margin in metres. (default: 0.05)" in text  # from field metadata
    assert "--sim.control-hz FLOAT Control rate of the sim twin, in Hz. (default: 20.0)" in text
    assert "--sim.camera.size INT INT Image height and width in pixels. (default: 84 84)" in text
    assert text.count("(default:") == 20  # every leaf field, nested ones included
    assert text.count("(default: True)") == 2  # argparse adds no second default to bool flags


def test_defaults_instance_replaces_the_dataclass_defaults(monkeypatch):
    defaults = TrainConfig(lr=1e-3, crop_box=(64, 64), sim=SimConfig(control_hz=5.0, randomize=False))
    assert parse([], defaults=defaults) == defaults
    assert parse(["--sim.randomize"], defaults=defaults).sim == SimConfig(control_hz=5.0, randomize=True)
    text = flat_help(make_parser(defaults=defaults), monkeypatch)
    assert "Adam learning rate. (default: 0.001)" in text
    assert "(default: 64 64)" in text and "in Hz. (default: 5.0)" in text
    with pytest.raises(TypeError, match="defaults must be a TrainConfig"):
        make_parser(defaults=SimConfig())


def test_prefix_puts_two_configs_in_one_parser():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser.add_argument_group("learner"), TrainConfig, prefix="learner-")
    add_dataclass_arguments(parser, SimConfig, prefix="twin.")
    args = parser.parse_args(["--learner-lr", "0.5", "--no-learner-sim.randomize", "--twin.control-hz", "2"])
    assert dataclass_from_args(TrainConfig, args, prefix="learner-") == TrainConfig(
        lr=0.5, sim=SimConfig(control_hz=20.0, randomize=False)
    )
    assert dataclass_from_args(SimConfig, args, prefix="twin.") == SimConfig(control_hz=2.0)


def test_namespace_without_some_attributes_keeps_defaults():
    namespace = argparse.Namespace(**{"lr": 0.1, "sim.randomize": False, "hidden": [1, 2]})
    config = dataclass_from_args(TrainConfig, namespace)
    # sim starts from the field's factory (control_hz=20), not from SimConfig().
    assert config == dataclasses.replace(
        TrainConfig(), lr=0.1, hidden=(1, 2), sim=SimConfig(control_hz=20.0, randomize=False)
    )


@dataclass(frozen=True)
class NeedsTask:
    task: str
    """Task to run (no default)."""
    steps: int = 10


def test_field_without_default_is_a_required_flag(capsys):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, NeedsTask)
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "--task" in capsys.readouterr().err
    assert dataclass_from_args(NeedsTask, parser.parse_args(["--task", "wipe"])) == NeedsTask("wipe", 10)
    assert "Task to run (no default). (required)" in " ".join(parser.format_help().split())
    with pytest.raises(ValueError, match="missing required NeedsTask value.*task"):
        from_dict(NeedsTask, {"steps": 3})


@dataclass(frozen=True)
class Positional:
    directory: str = field(metadata={"positional": True})
    """Demo directory."""
    out: str = field(default="sheet.png", metadata={"positional": True})
    episodes: int = 4


def test_positional_fields_are_positional_arguments(capsys):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Positional)
    got = dataclass_from_args(Positional, parser.parse_args(["demos/", "--episodes", "2"]))
    assert got == Positional("demos/", "sheet.png", 2)
    assert dataclass_from_args(Positional, parser.parse_args(["d", "x.png"])) == Positional("d", "x.png", 4)
    assert "DIRECTORY Demo directory. (required)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "DIRECTORY" in capsys.readouterr().err


def test_to_dict_is_plain_json_data():
    data = to_dict(TrainConfig())
    assert data["hidden"] == [256, 256] and data["crop"] == [4, 0.5] and data["crop_box"] is None
    assert data["sim"] == {
        "control_hz": 20.0,
        "randomize": True,
        "camera": {"size": [84, 84], "names": ["front", "wrist"]},
    }
    assert list(data) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert json.loads(json.dumps(data)) == data
    with pytest.raises(TypeError):
        to_dict(TrainConfig)


def changed_config() -> TrainConfig:
    return TrainConfig(
        lr=1e-5,
        use_demos=False,
        activation="tanh",
        utd=2,
        seed=0,
        checkpoint=None,
        encoder=None,
        hidden=(),
        crop_box=(10, 20),
        sim=SimConfig(control_hz=7.5, camera=CameraConfig(size=(1, 2), names=("a", "b", "c"))),
    )


@pytest.mark.parametrize("config", [TrainConfig(), changed_config(), SimConfig(), NeedsTask("x")])
def test_dict_and_file_round_trips(config, tmp_path):
    assert from_dict(type(config), to_dict(config)) == config
    assert from_dict(type(config), json.loads(json.dumps(to_dict(config)))) == config
    path = tmp_path / "config.json"
    save_config(config, path)
    loaded = load_config(type(config), path)
    assert loaded == config and type(loaded) is type(config)
    assert isinstance(loaded, TrainConfig) is False or isinstance(loaded.sim.camera.size, tuple)
    text = path.read_text()
    assert text.endswith("}\n") and '\n  "' in text  # indented
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left behind


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "config.json"
    save_config(TrainConfig(), path)
    save_config(changed_config(), path)
    assert load_config(TrainConfig, path) == changed_config()


def test_missing_keys_take_defaults():
    assert from_dict(TrainConfig, {}) == TrainConfig()
    config = from_dict(TrainConfig, {"lr": 1, "sim": {"camera": {"names": []}}})
    assert config.lr == 1.0 and type(config.lr) is float  # a JSON int is a fine float
    # A partial nested object starts from the field's default (control_hz=20), not SimConfig().
    assert config.sim == SimConfig(control_hz=20.0, camera=CameraConfig(names=()))


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="unknown TrainConfig key.*: learning_rate"):
        from_dict(TrainConfig, {"lr": 0.1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"sim\.camera\.fps"):
        from_dict(TrainConfig, {"sim": {"camera": {"fps": 30}}})


@pytest.mark.parametrize(
    "data, where",
    [
        ({"batch_size": "256"}, "batch_size"),
        ({"batch_size": 256.0}, "batch_size"),
        ({"use_demos": 1}, "use_demos"),
        ({"activation": "swish"}, "activation"),
        ({"utd": True}, "utd"),  # True == 1, but it is not the Literal value 1
        ({"seed": None, "task": None}, "task"),  # only optional fields take null
        ({"hidden": 256}, "hidden"),
        ({"hidden": [256, 1.5]}, r"hidden\[1\]"),
        ({"crop": [4]}, "crop"),
        ({"sim": [1]}, "sim"),
        ({"sim": {"camera": {"size": [1, "2"]}}}, r"sim\.camera\.size\[1\]"),
    ],
)
def test_wrong_values_are_named(data, where):
    with pytest.raises(ValueError, match=where):
        from_dict(TrainConfig, data)


def test_load_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"lr": 0.1,')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        load_config(TrainConfig, broken)
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"lr": 0.1, "old_option": 1}))
    with pytest.raises(ValueError, match=r"stale\.json: unknown TrainConfig key.*old_option"):
        load_config(TrainConfig, stale)
    with pytest.raises(FileNotFoundError):
        load_config(TrainConfig, tmp_path / "absent.json")


@dataclass
class HasList:
    ok: int = 1
    ids: list[int] = field(default_factory=list)


@dataclass
class HasUnion:
    value: Union[int, str] = 1  # noqa: UP007 -- the point is an unsupported union


@dataclass
class HasOptionalBool:
    flag: bool | None = None


@dataclass
class HasBareTuple:
    shape: tuple = ()


@dataclass
class HasBadNested:
    inner: HasList = field(default_factory=HasList)


@pytest.mark.parametrize(
    "cls, name",
    [
        (HasList, "HasList.ids"),
        (HasUnion, "HasUnion.value"),
        (HasOptionalBool, "HasOptionalBool.flag"),
        (HasBareTuple, "HasBareTuple.shape"),
        (HasBadNested, "HasList.ids"),
    ],
)
def test_unsupported_field_type_raises_naming_the_field(cls, name):
    with pytest.raises(TypeError, match=name):
        add_dataclass_arguments(argparse.ArgumentParser(), cls)
    with pytest.raises(TypeError, match=name):
        from_dict(cls, {})


def test_not_a_dataclass_is_refused():
    with pytest.raises(TypeError, match="not a dataclass"):
        add_dataclass_arguments(argparse.ArgumentParser(), dict)


def test_docstrings_of_a_local_class_and_of_base_classes():
    @dataclass(frozen=True)
    class Base:
        gain: float = 1.0
        """Gain of the
controller (a docstring line left of the class, which dedent cannot handle)."""

    @dataclass(frozen=True)
    class Child(Base):
        steps: int = 3
        """Steps per episode."""

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Child)
    text = " ".join(parser.format_help().split())
    assert "--gain FLOAT Gain of the controller (a docstring line" in text
    assert "--steps INT Steps per episode. (default: 3)" in text
    assert dataclass_from_args(Child, parser.parse_args(["--gain", "2"])) == Child(gain=2.0)


# -- valid values: bounds (command line and JSON), paths and check() (command line only) -------------------


@dataclass(frozen=True)
class Limits:
    gain: float = field(default=1.0, metadata={"gt": 0, "max": 10})
    """Controller gain."""
    rate: float | None = field(default=None, metadata={"min": 0.5})
    """Rate; none: as fast as it goes."""


@dataclass(frozen=True)
class Bounded:
    steps: int = field(default=100, metadata={"min": 1})
    """Env steps."""
    widths: tuple[int, ...] = field(default=(64, 64), metadata={"min": 1, "lt": 4096})
    """Layer widths."""
    limits: Limits = field(default_factory=Limits)


def parse_bounded(argv: list[str]) -> Bounded:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Bounded)
    return dataclass_from_args(Bounded, parser.parse_args(argv))


def test_bounds_are_shown_in_help(monkeypatch):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Bounded)
    text = flat_help(parser, monkeypatch)
    assert "--steps INT Env steps. (default: 100; >= 1)" in text
    assert "Layer widths. (default: 64 64; each >= 1, < 4096)" in text
    assert "--limits.gain FLOAT Controller gain. (default: 1.0; > 0, <= 10)" in text
    assert "none: as fast as it goes. (default: none; >= 0.5)" in text


def test_values_within_bounds_pass():
    assert parse_bounded([]) == Bounded()
    argv = ["--steps", "1", "--widths", "1", "4095", "--limits.gain", "10", "--limits.rate", "0.5"]
    config = parse_bounded(argv)
    assert config == Bounded(steps=1, widths=(1, 4095), limits=Limits(gain=10.0, rate=0.5))
    assert parse_bounded(["--limits.rate", "none"]).limits.rate is None  # None is no value to bound


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--steps", "-5"], "--steps must be >= 1, got -5"),
        (["--widths", "64", "0"], "every --widths value must be >= 1 and < 4096, got 0"),
        (["--widths", "4096"], "every --widths value must be >= 1 and < 4096, got 4096"),
        (["--limits.gain", "0"], "--limits.gain must be > 0 and <= 10, got 0.0"),
        (["--limits.gain", "10.5"], "--limits.gain must be > 0 and <= 10, got 10.5"),
        (["--limits.gain", "nan"], "--limits.gain must be > 0 and <= 10, got nan"),  # NaN is in no range
        (["--limits.rate", "0.25"], "--limits.rate must be >= 0.5, got 0.25"),
    ],
)
def test_a_value_out_of_bounds_names_its_flag(argv, message):
    with pytest.raises(ValueError) as error:
        parse_bounded(argv)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "data, message",
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"widths": [8, -1]}, "every widths value must be >= 1 and < 4096, got -1"),
        ({"limits": {"gain": 0}}, "limits.gain must be > 0 and <= 10, got 0.0"),
        ({"limits": {"rate": 0.1}}, "limits.rate must be >= 0.5, got 0.1"),
    ],
)
def test_json_values_are_bounded_too_naming_the_dotted_key(data, message, tmp_path):
    with pytest.raises(ValueError) as error:
        from_dict(Bounded, data)
    assert str(error.value) == message
    path = tmp_path / "bounded.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bounded\.json: " + message.replace(".", r"\.")):
        load_config(Bounded, path)
    assert from_dict(Bounded, to_dict(Bounded())) == Bounded()


@dataclass(frozen=True)
class Paths:
    key: str | None = field(default=None, metadata={"path": "existing_file"})
    """Key file."""
    keys: str | None = field(default=None, metadata={"path": "existing_dir"})
    """Key directory."""
    out: str = field(default="out", metadata={"path": "output_dir"})
    """Run directory."""
    sheet: str | None = field(default=None, metadata={"path": "output_file"})
    """PNG to write."""


def parse_paths(argv: list[str]) -> Paths:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Paths)
    return dataclass_from_args(Paths, parser.parse_args(argv))


def test_paths_are_checked_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.key").write_text("k")
    (tmp_path / "keys").mkdir()
    good = parse_paths(["--key", "a.key", "--keys", "keys", "--out", "new/run", "--sheet", "keys/s.png"])
    assert good == Paths(key="a.key", keys="keys", out="new/run", sheet="keys/s.png")
    assert parse_paths(["--out", "keys", "--sheet", "a.key"]).out == "keys"  # outputs may exist
    bad = {
        "--key missing.key: no such file": ["--key", "missing.key"],
        "--key keys: not a file": ["--key", "keys"],
        "--keys nowhere: no such directory": ["--keys", "nowhere"],
        "--keys a.key: not a directory": ["--keys", "a.key"],
        "--out a.key: exists and is not a directory": ["--out", "a.key"],
        "--sheet keys: is a directory": ["--sheet", "keys"],
    }
    for message, argv in bad.items():
        with pytest.raises(ValueError) as error:
            parse_paths(argv)
        assert str(error.value) == message
    with pytest.raises(ValueError, match=r"--out a\.key/run: cannot be created: .*a\.key is not a directory"):
        parse_paths(["--out", "a.key/run"])
    assert not (tmp_path / "new").exists()  # checked, not created
    # A saved config loads on a machine without those paths: JSON checks types and bounds only.
    assert from_dict(Paths, {"key": "missing.key", "out": "a.key"}).key == "missing.key"


def test_help_describes_path_kinds(monkeypatch):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Paths)
    text = flat_help(parser, monkeypatch)
    assert "Key file. (default: none; an existing file)" in text
    assert "Key directory. (default: none; an existing directory)" in text
    assert "Run directory. (default: out; a directory, created if missing)" in text


@dataclass(frozen=True)
class Inner:
    low: int = 0
    high: int = field(default=10, metadata={"min": 1})

    def check(self) -> None:
        CHECKED.append("inner")
        if self.low >= self.high:
            raise ValueError("--inner.low must be below --inner.high")


@dataclass(frozen=True)
class Outer:
    episodes: int = 1
    inner: Inner = field(default_factory=Inner)

    def check(self) -> None:
        CHECKED.append("outer")
        if self.episodes > self.inner.high:
            raise ValueError("--episodes must be <= --inner.high")


CHECKED: list[str] = []


def test_check_runs_after_the_command_line_is_parsed_nested_configs_first():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer)
    CHECKED.clear()
    assert dataclass_from_args(Outer, parser.parse_args(["--episodes", "3"])) == Outer(episodes=3)
    assert CHECKED == ["inner", "outer"]
    with pytest.raises(ValueError, match="--inner.low must be below --inner.high"):
        dataclass_from_args(Outer, parser.parse_args(["--inner.low", "10"]))
    with pytest.raises(ValueError, match="--episodes must be <= --inner.high"):
        dataclass_from_args(Outer, parser.parse_args(["--episodes", "11"]))
    # Bounds come before check(): check() may rely on every value being in its range.
    CHECKED.clear()
    with pytest.raises(ValueError, match="--inner.high must be >= 1, got 0"):
        dataclass_from_args(Outer, parser.parse_args(["--inner.high", "0"]))
    assert CHECKED == []
    # JSON: bounds only (check() may look at the machine a config was written on).
    assert from_dict(Outer, {"episodes": 11}) == Outer(episodes=11) and CHECKED == []


def test_a_positional_field_is_named_by_its_metavar(tmp_path):
    @dataclass(frozen=True)
    class Sheet:
        directory: str = field(metadata={"positional": True, "path": "existing_dir"})
        rows: int = field(default=4, metadata={"min": 1})

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Sheet)
    with pytest.raises(ValueError, match="^DIRECTORY .*missing: no such directory$"):
        dataclass_from_args(Sheet, parser.parse_args([str(tmp_path / "missing")]))
    with pytest.raises(ValueError, match="^--rows must be >= 1, got 0$"):
        dataclass_from_args(Sheet, parser.parse_args([str(tmp_path), "--rows", "0"]))


@dataclass
class BoundOnStr:
    name: str = field(default="a", metadata={"min": 1})


@dataclass
class TwoLowerBounds:
    lr: float = field(default=1.0, metadata={"min": 0, "gt": 0})


@dataclass
class PathOnInt:
    port: int = field(default=1, metadata={"path": "existing_file"})


@dataclass
class UnknownPathKind:
    out: str = field(default="x", metadata={"path": "somewhere"})


@pytest.mark.parametrize(
    "cls, match",
    [
        (BoundOnStr, "BoundOnStr.name: bounds need an int or float"),
        (TwoLowerBounds, "TwoLowerBounds.lr: give one lower bound"),
        (PathOnInt, "PathOnInt.port: a path field must be a str"),
        (UnknownPathKind, "UnknownPathKind.out: path kind must be one of"),
    ],
)
def test_limits_a_field_cannot_have_are_refused(cls, match):
    with pytest.raises(TypeError, match=match):
        add_dataclass_arguments(argparse.ArgumentParser(), cls)
