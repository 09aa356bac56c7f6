"""The wire format shared by actors and the learner: one multipart ZeroMQ message = a small JSON
header frame followed by one raw frame per array. No pickle anywhere: a peer can only ever make us
parse JSON and copy bytes into arrays whose dtype and shape we check against hard caps.

Header (UTF-8 JSON object):
    {"type": "step", "v": 1, "actor": "robot-1", "session": "8f3c...", "seq": 42,
     "arrays": [{"name": "state", "dtype": "float32", "shape": [14], "codec": "raw"}, ...],
     ...message-specific fields (numbers, strings, bools, lists, dicts)}

Decoding never trusts the peer: every problem raises `WireError` with a short `reason` (a metrics
counter key) and a one-line message, and nothing else escapes `decode`. Raw arrays are views on the
received frames (zero-copy); image arrays may travel JPEG- or PNG-coded (OpenCV) to save bandwidth.
Imports nothing of the project (design rule): both sides depend on it, it depends on neither."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MESSAGE_TYPES = frozenset(
    {"hello", "welcome", "step", "ack", "resend", "skip", "heartbeat", "weights", "bye"}
)
DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32", "float64", "bool"})
_NUMPY_DTYPES = {name: np.dtype(name) for name in DTYPES}  # built once: np.dtype() per array adds up
CODECS = frozenset({"raw", "jpeg", "png"})


@dataclass(frozen=True)
class Limits:
    """Hard caps on what a peer may send; anything bigger is rejected before it is parsed."""

    max_header_bytes: int = 64 * 1024
    max_frames: int = 64
    max_frame_bytes: int = 64 * 2**20  # a weights frame of a large encoder fits; a 4 GB one does not
    max_dims: int = 8


class WireError(ValueError):
    """A message that breaks the protocol. `reason` is a short stable key for counters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass
class Message:
    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.header["type"]


# -- encoding -----------------------------------------------------------------------------------
def encode(
    message_type: str,
    fields: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    image_codec: str = "raw",
    jpeg_quality: int = 90,
) -> list[bytes | memoryview]:
    """Frames of one message. `fields` go into the header next to the protocol version; uint8
    HxWx3 arrays are coded with `image_codec`, every other array goes raw (a zero-copy view of a
    C-contiguous array)."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {message_type!r}; known: {sorted(MESSAGE_TYPES)}")
    if image_codec not in CODECS:
        raise ValueError(f"image_codec must be one of {sorted(CODECS)}, got {image_codec!r}")
    header: dict[str, Any] = {"type": message_type, "v": PROTOCOL_VERSION, **(fields or {})}
    specs, frames = [], []
    for name, array in (arrays or {}).items():
        array = np.asarray(array)
        if array.dtype.name not in DTYPES:
            raise ValueError(f"array {name!r}: dtype {array.dtype} cannot go on the wire ({sorted(DTYPES)})")
        codec = image_codec if _is_image(array) else "raw"
        specs.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "codec": codec})
        frames.append(_encode_array(array, codec, jpeg_quality))
    header["arrays"] = specs
    return [json.dumps(header, separators=(",", ":")).encode(), *frames]


def _is_image(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


def _encode_array(array: np.ndarray, codec: str, jpeg_quality: int) -> bytes | memoryview:
    if codec == "raw":
        return memoryview(np.ascontiguousarray(array)).cast("B")
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if codec == "jpeg" else []
    ok, coded = cv2.imencode(f".{codec}", np.ascontiguousarray(array[..., ::-1]), params)  # RGB -> BGR
    if not ok:
        raise ValueError(f"OpenCV could not {codec}-encode an array of shape {array.shape}")
    return coded.tobytes()


# -- decoding -----------------------------------------------------------------------------------
def decode(frames: Sequence[Any], limits: Limits = Limits(), *, allow_nonfinite: bool = False) -> Message:
    """Parse and check one multipart message (frames as bytes, memoryviews or zmq.Frame). Raises
    WireError, and only WireError, for anything a peer could get wrong."""
    try:
        buffers = [_buffer(frame) for frame in frames]
    except TypeError as error:
        raise WireError("malformed", f"a frame is not a byte buffer ({error})") from None
    if not buffers:
        raise WireError("malformed", "empty message")
    if len(buffers) > limits.max_frames + 1:
        raise WireError("too_many_frames", f"{len(buffers) - 1} array frames > cap {limits.max_frames}")
    header = _parse_header(buffers[0], limits)
    specs = header["arrays"]
    if len(specs) != len(buffers) - 1:
        raise WireError("malformed", f"header lists {len(specs)} arrays but {len(buffers) - 1} frames came")
    arrays = {}
    for spec, buffer in zip(specs, buffers[1:], strict=True):
        if buffer.nbytes > limits.max_frame_bytes:
            raise WireError("frame_too_large", f"array {spec['name']!r}: {buffer.nbytes} bytes > cap")
        array = _decode_array(spec, buffer)
        if not allow_nonfinite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise WireError("nonfinite", f"array {spec['name']!r} holds NaN or inf")
        arrays[spec["name"]] = array
    return Message(header, arrays)


def _buffer(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):  # zmq.Frame: its memory, without a copy
        frame = frame.buffer
    return memoryview(frame).cast("B")


def _parse_header(buffer: memoryview, limits: Limits) -> dict[str, Any]:
    if buffer.nbytes > limits.max_header_bytes:
        raise WireError("header_too_large", f"{buffer.nbytes} bytes > cap {limits.max_header_bytes}")
    try:
        header = json.loads(bytes(buffer).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WireError("malformed", f"header is not UTF-8 JSON ({type(error).__name__})") from None
    if not isinstance(header, dict):
        raise WireError("malformed", "header is not a JSON object")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise WireError("bad_version", f"protocol version {version!r}, this side speaks {PROTOCOL_VERSION}")
    if header.get("type") not in MESSAGE_TYPES:
        raise WireError("unknown_type", f"message type {str(header.get('type'))[:40]!r}")
    specs = header.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > limits.max_frames:
        raise WireError("malformed", "header 'arrays' must be a list within the frame cap")
    names = set()
    for spec in specs:
        _check_spec_cached(spec, limits)
        if spec["name"] in names:
            raise WireError("malformed", f"array {spec['name']!r} appears twice")
        names.add(spec["name"])
    header["arrays"] = specs
    return header


_CHECKED_SPECS: set[tuple] = set()  # array specs already found valid: a stream repeats the same few


def _check_spec_cached(spec: Any, limits: Limits) -> None:
    shape = spec.get("shape") if type(spec) is dict else None
    if type(shape) is list and all(type(d) is int for d in shape):  # bools never match a cached int
        key = (limits, spec.get("name"), spec.get("dtype"), spec.get("codec", "raw"), tuple(shape))
        try:
            if key in _CHECKED_SPECS:
                return
        except TypeError:  # an unhashable name, dtype or codec: certainly not a cached valid spec
            _check_spec(spec, limits)
            return
        _check_spec(spec, limits)
        if len(_CHECKED_SPECS) > 4096:  # a peer inventing names must not grow it without bound
            _CHECKED_SPECS.clear()
        _CHECKED_SPECS.add(key)
        return
    _check_spec(spec, limits)


def _check_spec(spec: Any, limits: Limits) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise WireError("malformed", "an array spec needs a non-empty string 'name'")
    name = spec["name"][:40]
    if spec.get("dtype") not in DTYPES:
        raise WireError("bad_dtype", f"array {name!r}: dtype {str(spec.get('dtype'))[:20]!r}")
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_dims
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise WireError("bad_shape", f"array {name!r}: shape {str(shape)[:60]}")
    if math.prod(shape) * _NUMPY_DTYPES[spec["dtype"]].itemsize > limits.max_frame_bytes:
        raise WireError("frame_too_large", f"array {name!r}: shape {shape} exceeds the frame cap")
    if spec.get("codec", "raw") not in CODECS:
        raise WireError("bad_codec", f"array {name!r}: codec {str(spec.get('codec'))[:20]!r}")


def _decode_array(spec: dict[str, Any], buffer: memoryview) -> np.ndarray:
    dtype, shape, codec = _NUMPY_DTYPES[spec["dtype"]], tuple(spec["shape"]), spec.get("codec", "raw")
    if codec == "raw":
        if buffer.nbytes != math.prod(shape) * dtype.itemsize:
            raise WireError("bad_shape", f"array {spec['name']!r}: {buffer.nbytes} bytes for {shape} {dtype}")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)  # zero-copy, read-only
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
        raise WireError("bad_codec", f"array {spec['name']!r}: {codec} is only for uint8 HxWx3 images")
    import cv2

    image = cv2.imdecode(np.frombuffer(buffer, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape != shape:
        got = None if image is None else image.shape
        raise WireError("bad_shape", f"array {spec['name']!r}: {codec} decoded to {got}, header says {shape}")
    return np.ascontiguousarray(image[..., ::-1])  # BGR -> RGB


# -- byte containers (spool files, the learner's journal) -----------------------------------------
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")


def frame_table(frames: Sequence[bytes | memoryview]) -> bytes:
    """The head of `pack_frames`: frame count and lengths (the frames follow it as they are)."""
    return _COUNT.pack(len(frames)) + b"".join(_LENGTH.pack(memoryview(f).nbytes) for f in frames)


def pack_frames(frames: Sequence[bytes | memoryview]) -> bytes:
    """One message's frames as one byte string: frame count, frame lengths, frames."""
    return b"".join([frame_table(frames), *frames])


def unpack_frames(blob: bytes | memoryview) -> list[memoryview]:
    """Inverse of `pack_frames` (views into `blob`); WireError('malformed') if it does not add up."""
    view = memoryview(blob).cast("B")
    try:
        (count,) = _COUNT.unpack_from(view, 0)
        if count > 4096:
            raise struct.error("frame count")
        offset = _COUNT.size
        lengths = [_LENGTH.unpack_from(view, offset + i * _LENGTH.size)[0] for i in range(count)]
    except struct.error:
        raise WireError("malformed", "truncated frame table") from None
    offset += count * _LENGTH.size
    if offset + sum(lengths) != view.nbytes:
        raise WireError("malformed", f"{view.nbytes} bytes do not match the frame table")
    frames = []
    for length in lengths:
        frames.append(view[offset : offset + length])
        offset += length
    return frames


# -- step records: what an actor sends per env step ---------------------------------------------
@dataclass(frozen=True)
class RecordSpec:
    """What a task's step records must hold; the learner rejects anything else."""

    state_dim: int
    action_dim: int
    image_shapes: Mapping[str, tuple[int, int, int]]
    # A residual run's records also carry the base policy's action at their observation (and at the
    # final one). A property of the run, not of the observations: not in to_json (an actor's hello
    # states what its env observes; it learns about the residual from the learner's welcome).
    base_action_dim: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "image_shapes": {name: list(shape) for name, shape in self.image_shapes.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordSpec:
        shapes = {name: tuple(int(d) for d in shape) for name, shape in data["image_shapes"].items()}
        return cls(int(data["state_dim"]), int(data["action_dim"]), shapes)


@dataclass
class StepRecord:
    """One env step as the actor saw it: obs_t, the action it executed, what followed. The episode's
    last record also carries the final observation (`final_state`/`final_images`); every other
    record's next observation is the next record's obs, so each camera frame crosses the wire once."""

    actor: str
    session: str
    seq: int
    episode: int  # episode counter within the session
    t: int  # step index within the episode
    state: np.ndarray
    images: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    success: bool = False
    intervened: bool = False
    safety_margin: float = math.inf
    policy_version: int = -1
    action_source: str = "policy"  # the stage that produced the executed action (ACTION_SOURCES)
    filter_delta: float = 0.0  # how far the safety filter moved the action (L2 norm, action units)
    final_state: np.ndarray | None = None
    final_images: dict[str, np.ndarray] | None = None
    base_action: np.ndarray | None = None  # a residual run's: the base policy's action at `state`
    final_base_action: np.ndarray | None = None  # ... and at the final observation

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


_RECORD_INTS = ("seq", "episode", "t", "policy_version")
# Which stage of the actor's composition (base -> residual -> operator -> safety filter) produced
# the executed action: the policy (base or residual), a human operator, or the safety filter.
ACTION_SOURCES = ("policy", "operator", "filter")
_RECORD_BOOLS = ("terminated", "truncated", "success", "intervened")


def encode_step(record: StepRecord, *, image_codec: str = "raw") -> list[bytes | memoryview]:
    """Frames of a step record (zero-copy for raw arrays)."""
    arrays = {"state": record.state, "action": record.action}
    arrays.update({f"image.{name}": frame for name, frame in record.images.items()})
    if record.base_action is not None:
        arrays["base_action"] = record.base_action
    if record.done:
        if record.final_state is None:
            raise ValueError("the last record of an episode needs final_state (the final observation)")
        arrays["final.state"] = record.final_state
        arrays.update({f"final.image.{name}": frame for name, frame in (record.final_images or {}).items()})
        if record.base_action is not None:
            if record.final_base_action is None:
                raise ValueError("a residual run's last record needs final_base_action")
            arrays["final.base_action"] = record.final_base_action
    fields = {
        "actor": record.actor,
        "session": record.session,
        **{name: int(getattr(record, name)) for name in _RECORD_INTS},
        **{name: bool(getattr(record, name)) for name in _RECORD_BOOLS},
        "reward": float(record.reward),
        "safety_margin": None if math.isinf(record.safety_margin) else float(record.safety_margin),
        "action_source": record.action_source,
        "filter_delta": float(record.filter_delta),
    }
    return encode("step", fields, arrays, image_codec=image_codec)


def parse_step(message: Message, spec: RecordSpec) -> StepRecord:
    """The step record in a decoded 'step' message, checked against the task's spec; WireError
    ('bad_record') names the first problem."""
    header, arrays = message.header, message.arrays
    for name in ("actor", "session"):
        if not isinstance(header.get(name), str) or not 0 < len(header[name]) <= 128:
            raise WireError("bad_record", f"{name!r} must be a non-empty string of <= 128 characters")
    for name in _RECORD_INTS:
        value = header.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value < 2**62:
            raise WireError("bad_record", f"{name!r} must be an integer, got {str(value)[:30]}")
    for name in _RECORD_BOOLS:
        if not isinstance(header.get(name), bool):
            raise WireError("bad_record", f"{name!r} must be true or false")
    reward, margin = header.get("reward"), header.get("safety_margin")
    if not _is_finite_number(reward):
        raise WireError("bad_record", f"reward must be a finite number, got {str(reward)[:30]}")
    if margin is not None and not _is_finite_number(margin):
        raise WireError("bad_record", "safety_margin must be a finite number or null")
    source, delta = header.get("action_source", "policy"), header.get("filter_delta", 0.0)
    if source not in ACTION_SOURCES:
        raise WireError("bad_record", f"action_source must be one of {ACTION_SOURCES}: {str(source)[:20]}")
    if not _is_finite_number(delta) or delta < 0:
        raise WireError("bad_record", f"filter_delta must be a finite number >= 0, got {str(delta)[:30]}")
    done = header["terminated"] or header["truncated"]
    expected = _record_arrays(spec, final=done)
    if set(arrays) != set(expected):
        raise WireError("bad_record", f"arrays {sorted(arrays)[:8]}, expected {sorted(expected)}")
    for name, (dtype, shape) in expected.items():
        if arrays[name].dtype != dtype or arrays[name].shape != shape:
            got = f"{arrays[name].dtype} {arrays[name].shape}"
            raise WireError("bad_record", f"array {name!r} must be {dtype} {shape}, got {got}")
    cameras = list(spec.image_shapes)
    return StepRecord(
        actor=header["actor"],
        session=header["session"],
        **{name: header[name] for name in _RECORD_INTS},
        **{name: header[name] for name in _RECORD_BOOLS},
        state=arrays["state"],
        images={name: arrays[f"image.{name}"] for name in cameras},
        action=arrays["action"],
        reward=float(reward),
        safety_margin=math.inf if margin is None else float(margin),
        action_source=source,
        filter_delta=float(delta),
        final_state=arrays["final.state"] if done else None,
        final_images={name: arrays[f"final.image.{name}"] for name in cameras} if done else None,
        base_action=arrays.get("base_action"),
        final_base_action=arrays.get("final.base_action"),
    )


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _record_arrays(spec: RecordSpec, final: bool) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    expected = {"state": (np.dtype(np.float32), (spec.state_dim,))}
    expected["action"] = (np.dtype(np.float32), (spec.action_dim,))
    for name, shape in spec.image_shapes.items():
        expected[f"image.{name}"] = (np.dtype(np.uint8), tuple(shape))
    if spec.base_action_dim:
        expected["base_action"] = (np.dtype(np.float32), (spec.base_action_dim,))
    if final:
        expected["final.state"] = expected["state"]
        for name, shape in spec.image_shapes.items():
            expected[f"final.image.{name}"] = (np.dtype(np.uint8), tuple(shape))
        if spec.base_action_dim:
            expected["final.base_action"] = expected["base_action"]
    return expected


# -- weights: named tensors in one frame ---------------------------------------------------------
def pack_weights(tensors: Mapping[str, np.ndarray]) -> tuple[list[list[Any]], np.ndarray]:
    """(manifest, blob): every tensor's bytes back to back in one uint8 array, so a policy with
    hundreds of tensors is one frame. Manifest rows: [name, dtype, shape, byte offset]."""
    manifest, offset = [], 0
    for name, array in tensors.items():
        if array.dtype.name not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {array.dtype} cannot go on the wire")
        manifest.append([name, array.dtype.name, list(array.shape), offset])
        offset += array.nbytes
    blob = np.empty(offset, dtype=np.uint8)
    for (_, _, _, start), array in zip(manifest, tensors.values(), strict=True):
        blob[start : start + array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return manifest, blob


def unpack_weights(manifest: Any, blob: np.ndarray) -> dict[str, np.ndarray]:
    """Copies of the tensors `pack_weights` packed; WireError('bad_weights') if the manifest does not
    describe `blob` exactly (so a peer cannot make us read out of bounds)."""
    if not isinstance(manifest, list) or blob.dtype != np.uint8 or blob.ndim != 1:
        raise WireError("bad_weights", "need a manifest list and a 1-D uint8 blob")
    tensors, end = {}, 0
    for row in manifest:
        if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str)):
            raise WireError("bad_weights", f"manifest row {str(row)[:60]}")
        name, dtype, shape, offset = row
        _check_spec({"name": name, "dtype": dtype, "shape": shape}, Limits())
        size = math.prod(shape) * np.dtype(dtype).itemsize
        if offset != end or end + size > blob.nbytes:
            raise WireError("bad_weights", f"tensor {name[:40]!r} lies outside the blob")
        tensors[name] = blob[offset : offset + size].view(dtype).reshape(shape).copy()
        end += size
    if end != blob.nbytes:
        raise WireError("bad_weights", f"blob holds {blob.nbytes} bytes, manifest {end}")
    return tensors
