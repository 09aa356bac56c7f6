"""Encoder model files: a frozen trunk pretrained on a task's own frames (`realrl encoder pretrain`
writes one, `--agent.encoder pretrained:MODEL` loads it), with what it was trained for: cameras,
image size, the objective and its losses, and the weights' content hash (its identity in a run's
config). Tensors plus one JSON string, read with torch.load(weights_only=True): no pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from formats.files import atomic_write
from policies.encoders import FrameTrunk, trunk_hash

FORMAT = "realrl-encoder/1"


@dataclass(frozen=True)
class EncoderModel:
    trunk: FrameTrunk
    cameras: tuple[str, ...]
    image_size: int
    hash: str
    info: dict[str, Any] = field(default_factory=dict)  # objective, data, losses
    path: str = ""

    def check_fits(self, cameras: tuple[str, ...], image_size: int) -> None:
        """Refuse a task whose cameras or frame size are not the ones the trunk was trained on."""
        if tuple(cameras) != self.cameras or image_size != self.image_size:
            raise ValueError(
                f"encoder model {self.path}: trained on cameras {list(self.cameras)} at "
                f"{self.image_size}x{self.image_size}, but the task gives cameras {list(cameras)} at "
                f"{image_size}x{image_size}; pretrain one on this task's frames (realrl encoder pretrain)"
            )


def save_encoder_model(
    path: str | Path, trunk: FrameTrunk, cameras: tuple[str, ...], info: dict[str, Any]
) -> str:
    """Write the model atomically; returns its hash."""
    digest = trunk_hash(trunk)
    meta = {
        "format": FORMAT,
        "arch": trunk.arch(),
        "cameras": list(cameras),
        "image_size": trunk.image_size,
        "hash": digest,
        "info": info,
    }
    weights = {name: t.detach().cpu().float() for name, t in trunk.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({"meta": json.dumps(meta), "weights": weights}, f))
    return digest


def load_encoder_model(path: str | Path) -> EncoderModel:
    """Read and check a model file: its format, its architecture, and that the weights still hash
    to the identity it was saved with (a corrupt or edited file is refused)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"encoder model {path}: no such file (write one with `realrl encoder pretrain`; an actor on "
            "another machine than the learner's: copy the run's model here and pass --encoder-model)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(data["meta"])
    except Exception as error:  # a torch.load of a foreign file raises many kinds
        raise ValueError(f"encoder model {path}: not a realrl encoder file ({error})") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"encoder model {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    arch = meta["arch"]
    if arch.get("kind") != "frame-trunk":
        raise ValueError(f"encoder model {path}: unknown architecture {arch}")
    trunk = FrameTrunk(int(arch["image_size"]), int(arch["channels"]))
    trunk.load_state_dict(data["weights"])
    digest = trunk_hash(trunk)
    if digest != meta["hash"]:
        raise ValueError(f"encoder model {path}: weights hash to {digest}, the file says {meta['hash']}")
    return EncoderModel(
        trunk, tuple(meta["cameras"]), int(meta["image_size"]), digest, meta.get("info", {}), str(path)
    )


def encoder_identity(encoder: str, given_hash: str | None = None) -> tuple[str, str | None]:
    """A pretrained:MODEL encoder as a run or a model file saves it: (pretrained:<absolute path>,
    the model's content hash), so it loads from any directory and a changed file is refused. Other
    encoders: (encoder, given_hash). A hash given must be the model's."""
    from policies.encoders import PRETRAINED_PREFIX

    if not encoder.startswith(PRETRAINED_PREFIX):
        return encoder, given_hash
    path = Path(encoder[len(PRETRAINED_PREFIX) :]).expanduser().resolve()
    found = load_encoder_model(path).hash
    if given_hash not in (None, found):
        raise ValueError(f"encoder hash {given_hash}: the model {path} hashes to {found}")
    return f"{PRETRAINED_PREFIX}{path}", found
