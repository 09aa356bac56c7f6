"""Named defaults per task family, as RLPD ships per-domain configs: one registry, looked up by the
family a run's config names (`--preset`, or `auto`: control for a gymnasium env, robot for a task),
never by a task's name. A preset sets the fields the user did not give as flags; the run's
config.json records the resolved name and values, so a --resume trains with the same ones.

The robot preset is TrainConfig's own defaults (RLPD with SERL's numbers; each departure from the
papers states its measured reason in that field's docstring). The control preset is the SAC paper's
(Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", Table 1) with CleanRL's
warm-up and learning rates, whose curves the `control` learning benchmark compares against; each
departure is commented where it is set."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from learner.configs import TrainConfig


@dataclass(frozen=True)
class Preset:
    doc: str
    values: Mapping[str, Any]
    """Dotted field name (`agent.critics`) -> value, over TrainConfig's defaults."""


PRESETS: dict[str, Preset] = {
    "robot": Preset(
        "sparse 0/1 success rewards with demos (sim twins, real arms): RLPD + SERL, TrainConfig's defaults",
        {},
    ),
    "control": Preset(
        "dense-reward control benchmarks without demos (gymnasium's MuJoCo suite): the SAC paper's values",
        {
            # Two critics, min of both, no LayerNorm: SAC's clipped double Q (RLPD's 10 + LayerNorm
            # serve its 50/50 demo batches; they cost 2.7x per update here, 24 vs 8.8 ms measured).
            "agent.critics": 2,
            "agent.critic_subsample": 2,
            "agent.critic_layer_norm": False,
            # Dense rewards of hundreds per episode: SAC's initial temperature 1 and target -|A|.
            "agent.init_temperature": 1.0,
            "agent.target_entropy_per_dim": 1.0,
            # No demos to fit a normaliser on, and SAC uses none.
            "agent.normalize_state": False,
            "n_step": 1,
            # Departures, CleanRL's (sac_continuous_action.py), whose curves the benchmark's references
            # come from: 5000 uniform steps before learning (SAC: 1000), and critic and temperature
            # learning rates of 1e-3 (SAC: 3e-4 for all). Measured on InvertedPendulum-v5 at 20k steps:
            # 3e-4 let the temperature fall from 1 to only 0.07 and seed 0 reached a return of 127.
            "learning_starts": 5000,
            "agent.critic_lr": 1e-3,
            "agent.temperature_lr": 1e-3,
            # A dense return varies far less between episodes than a success rate does.
            "eval_episodes": 10,
        },
    ),
}


def preset_name(config: TrainConfig) -> str:
    """The family of `config`: its --preset, or for auto, control with a gymnasium env, else robot."""
    if config.preset != "auto":
        return config.preset
    return "control" if config.env is not None else "robot"


def with_preset(config: TrainConfig, given: Collection[str] = ()) -> TrainConfig:
    """`config` with its preset's values for every field not in `given` (dotted names of the flags
    the user passed, e.g. realrl.commands.train.given_fields), and `preset` resolved."""
    name = preset_name(config)
    values = {key: value for key, value in PRESETS[name].values.items() if key not in given}
    return replace_fields(config, {**values, "preset": name})


def replace_fields(config: Any, values: Mapping[str, Any]) -> Any:
    """A copy of the (nested, frozen) dataclass `config` with dotted fields replaced."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[key] = value
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(k for k in [*top, *nested] if k not in names)
    if unknown:
        raise ValueError(f"{type(config).__name__} has no field {unknown[0]!r}")
    for head, inner in nested.items():
        top[head] = replace_fields(getattr(config, head), inner)
    return dataclasses.replace(config, **top)
