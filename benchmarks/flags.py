"""The shape flags both learner benchmarks (ours and LeRobot's) take, so a comparison is the same
command line twice. No imports beyond argparse: `realrl --help` builds these without torch."""

from __future__ import annotations

import argparse

SHAPE_FLAGS = ("obs", "encoder", "critics", "batch", "image_size", "cameras", "seconds", "device")


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both learner benchmarks take, so a comparison is the same command line twice."""
    parser.add_argument("--obs", choices=("state", "pixels"), default="state")
    parser.add_argument("--encoder", choices=("conv", "resnet18"), default="conv")
    parser.add_argument("--critics", type=int, default=10, help="critic ensemble size")
    parser.add_argument("--batch", type=int, default=256, help="transitions per update")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--cameras", type=int, default=2, help="camera frames per step (pixels)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def shape_kwargs(args: argparse.Namespace) -> dict:
    """The parsed shape flags as keyword arguments of both benchmarks' run()."""
    return {name: getattr(args, name) for name in SHAPE_FLAGS}
