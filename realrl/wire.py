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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MESSAGE_TYPES = frozenset({"hello", "welcome", "step", "ack", "heartbeat", "weights", "bye"})
DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32", "float64", "bool"})
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
        _check_spec(spec, limits)
        if spec["name"] in names:
            raise WireError("malformed", f"array {spec['name']!r} appears twice")
        names.add(spec["name"])
    header["arrays"] = specs
    return header


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
    if math.prod(shape) * np.dtype(spec["dtype"]).itemsize > limits.max_frame_bytes:
        raise WireError("frame_too_large", f"array {name!r}: shape {shape} exceeds the frame cap")
    if spec.get("codec", "raw") not in CODECS:
        raise WireError("bad_codec", f"array {name!r}: codec {str(spec.get('codec'))[:20]!r}")


def _decode_array(spec: dict[str, Any], buffer: memoryview) -> np.ndarray:
    dtype, shape, codec = np.dtype(spec["dtype"]), tuple(spec["shape"]), spec.get("codec", "raw")
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
