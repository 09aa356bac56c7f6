"""The wire format: exact round trips (raw and PNG), JPEG within its loss, zero-copy raw arrays, and
every kind of bad input rejected with its reason, including a seeded fuzz of random frames."""

import json

import numpy as np
import pytest

from formats.wire import PROTOCOL_VERSION, Limits, WireError, decode, encode


def step_arrays(rng):
    return {
        "state": rng.standard_normal(14).astype(np.float32),
        "action": rng.uniform(-1, 1, 4).astype(np.float32),
        "front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
    }


def test_raw_round_trip_is_exact_and_zero_copy():
    arrays = step_arrays(np.random.default_rng(0))
    frames = encode("step", {"actor": "a1", "session": "s", "seq": 7, "reward": 1.0}, arrays)
    assert json.loads(frames[0])["v"] == PROTOCOL_VERSION
    assert [f.nbytes if isinstance(f, memoryview) else len(f) for f in frames[1:]] == [56, 16, 3072]
    message = decode(frames)
    assert message.type == "step" and message.header["seq"] == 7 and message.header["reward"] == 1.0
    for name, array in arrays.items():
        assert message.arrays[name].dtype == array.dtype and np.array_equal(message.arrays[name], array)
    # Raw arrays are views on the received buffer, not copies.
    received = bytearray(frames[3])
    view = decode([frames[0], frames[1], frames[2], received]).arrays["front"]
    received[0] = (received[0] + 1) % 256
    assert view[0, 0, 0] == received[0]


def test_png_is_lossless_and_jpeg_close():
    rng = np.random.default_rng(1)
    smooth = np.clip(np.add.outer(np.arange(64), np.arange(64))[..., None] * 2 + [0, 40, 80], 0, 255)
    image = smooth.astype(np.uint8)
    png = decode(encode("step", {}, {"front": image}, image_codec="png")).arrays["front"]
    assert np.array_equal(png, image)
    jpeg_frames = encode("step", {}, {"front": image, "state": np.ones(3, np.float32)}, image_codec="jpeg")
    assert len(jpeg_frames[1]) < image.nbytes / 3  # coded, and only the image: state stays raw
    jpeg = decode(jpeg_frames).arrays["front"]
    assert np.abs(jpeg.astype(int) - image).mean() < 3
    noise = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(decode(encode("step", {}, {"x": noise}, image_codec="png")).arrays["x"], noise)


def header_with(**changes):
    header = {
        "type": "step",
        "v": PROTOCOL_VERSION,
        "arrays": [{"name": "state", "dtype": "float32", "shape": [2]}],
    }
    header.update(changes)
    return json.dumps(header).encode()


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "malformed"),
        ([b"\xff\xfe not json"], "malformed"),
        ([b"[1, 2]"], "malformed"),
        ([header_with(v=99), np.zeros(2, np.float32).tobytes()], "bad_version"),
        ([header_with(type="steal_weights"), np.zeros(2, np.float32).tobytes()], "unknown_type"),
        ([header_with(), np.zeros(3, np.float32).tobytes()], "bad_shape"),
        ([header_with(), np.zeros(2, np.float32).tobytes(), b"extra"], "malformed"),
        ([header_with(arrays=[{"name": "x", "dtype": "object", "shape": [1]}]), b"\0" * 8], "bad_dtype"),
        ([header_with(arrays=[{"name": "x", "dtype": "uint8", "shape": [-1]}]), b""], "bad_shape"),
        ([header_with(arrays=[{"name": "x", "dtype": "uint8", "shape": [True]}]), b"\0"], "bad_shape"),
        (
            [header_with(arrays=[{"name": "x", "dtype": "uint8", "shape": [10**9, 10**9]}]), b""],
            "frame_too_large",
        ),
        (
            [header_with(arrays=[{"name": "x", "dtype": "uint8", "shape": [1], "codec": "gif"}]), b"\0"],
            "bad_codec",
        ),
        (
            [
                header_with(arrays=[{"name": "x", "dtype": "uint8", "shape": [4, 4, 3], "codec": "jpeg"}]),
                b"junk",
            ],
            "bad_shape",
        ),
        ([header_with(), np.array([1.0, np.nan], np.float32).tobytes()], "nonfinite"),
        ([header_with(), np.array([np.inf, 0.0], np.float32).tobytes()], "nonfinite"),
        ([b" " * (64 * 1024 + 1)], "header_too_large"),
        ([header_with()] + [b""] * 70, "too_many_frames"),
        (
            [header_with(arrays=[{"name": "a", "dtype": "uint8", "shape": [1]}] * 2), b"\0", b"\0"],
            "malformed",
        ),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(frames, reason):
    with pytest.raises(WireError) as caught:
        decode(frames)
    assert caught.value.reason == reason


def test_frame_cap_is_checked_before_parsing():
    limits = Limits(max_frame_bytes=100)
    frames = encode("weights", {}, {"w": np.zeros(26, np.float32)})  # 104 bytes
    with pytest.raises(WireError) as caught:
        decode(frames, limits)
    assert caught.value.reason == "frame_too_large"
    assert decode(encode("weights", {}, {"w": np.zeros(25, np.float32)}), limits).arrays["w"].shape == (25,)


def test_fuzz_random_and_mutated_frames_only_raise_wire_errors():
    rng = np.random.default_rng(1234)
    good = encode("step", {"actor": "a", "seq": 1}, step_arrays(rng))
    good_bytes = [bytes(f) for f in good]
    outcomes = {"ok": 0}
    for trial in range(3000):
        if trial % 3 == 0:  # random bytes, random frame count
            frames = [rng.bytes(int(rng.integers(0, 200))) for _ in range(int(rng.integers(0, 5)))]
        elif trial % 3 == 1:  # a good message with a few bytes flipped
            frames = [bytearray(f) for f in good_bytes]
            target = frames[int(rng.integers(0, len(frames)))]
            for _ in range(int(rng.integers(1, 4))):
                if target:
                    target[int(rng.integers(0, len(target)))] = int(rng.integers(0, 256))
        else:  # a good message with frames dropped, duplicated or truncated
            frames = list(good_bytes)
            cut = int(rng.integers(0, len(frames)))
            frames[cut] = frames[cut][: int(rng.integers(0, len(frames[cut]) + 1))]
            if rng.random() < 0.5:
                frames.append(frames[int(rng.integers(0, len(frames)))])
        try:
            decode(frames)
            outcomes["ok"] += 1
        except WireError as error:
            outcomes[error.reason] = outcomes.get(error.reason, 0) + 1
    assert outcomes["ok"] > 0  # some flips land in the data and are legitimately accepted
    assert {"malformed", "bad_shape"} <= set(outcomes)


def test_encode_refuses_what_cannot_travel():
    with pytest.raises(ValueError, match="message type"):
        encode("pickle", {})
    with pytest.raises(ValueError, match="dtype"):
        encode("step", {}, {"x": np.array(["a"], dtype=object)})
    with pytest.raises(ValueError, match="image_codec"):
        encode("step", {}, {}, image_codec="bmp")


def test_step_records_round_trip_and_bad_ones_name_the_field():
    from formats.wire import RecordSpec, StepRecord, encode_step, parse_step

    spec = RecordSpec(3, 2, {"front": (4, 4, 3)})
    rng = np.random.default_rng(0)
    record = StepRecord(
        actor="a", session="s", seq=5, episode=1, t=4, state=rng.standard_normal(3).astype(np.float32),
        images={"front": rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)}, action=np.ones(2, np.float32),
        reward=0.5, terminated=True, truncated=False, success=True, policy_version=7,
        action_source="filter", filter_delta=0.125,
        final_state=np.zeros(3, np.float32), final_images={"front": np.zeros((4, 4, 3), np.uint8)},
    )  # fmt: skip
    frames = encode_step(record)
    assert len(frames) == 1 + 5  # header + state, action, image, final state, final image
    parsed = parse_step(decode(frames), spec)
    assert (parsed.seq, parsed.episode, parsed.t, parsed.policy_version) == (5, 1, 4, 7)
    assert parsed.reward == 0.5 and parsed.terminated and parsed.success and parsed.safety_margin == np.inf
    assert (parsed.action_source, parsed.filter_delta) == ("filter", 0.125)
    assert np.array_equal(parsed.images["front"], record.images["front"])
    assert np.array_equal(parsed.final_state, np.zeros(3))

    def broken(**changes):
        header = json.loads(bytes(frames[0]))
        header.update(changes)
        return decode([json.dumps(header).encode(), *frames[1:]])

    for changes, words in [
        ({"seq": True}, "'seq' must be an integer"),
        ({"reward": "1"}, "reward must be a finite number"),
        ({"terminated": 1}, "'terminated' must be true or false"),
        ({"actor": ""}, "'actor' must be a non-empty string"),
        ({"terminated": False}, "arrays"),  # a non-final record must not carry the final obs
        ({"action_source": "teleport"}, "action_source must be one of"),
        ({"filter_delta": -0.5}, "filter_delta must be a finite number >= 0"),
    ]:
        with pytest.raises(WireError, match=words) as caught:
            parse_step(broken(**changes), spec)
        assert caught.value.reason == "bad_record"
    with pytest.raises(WireError, match="must be float32 \\(4,\\), got float32 \\(3,\\)"):
        parse_step(decode(frames), RecordSpec(4, 2, {"front": (4, 4, 3)}))


def test_weights_pack_into_one_frame_and_a_lying_manifest_is_refused():
    from formats.wire import pack_weights, unpack_weights

    tensors = {
        "encoder.w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "encoder.fitted": np.array(True),
        "actor.b": np.array([1.5, -2.0], np.float32),
    }
    manifest, blob = pack_weights(tensors)
    assert blob.dtype == np.uint8 and blob.nbytes == 24 + 1 + 8
    message = decode(encode("weights", {"version": 3, "tensors": manifest}, {"blob": blob}))
    unpacked = unpack_weights(message.header["tensors"], message.arrays["blob"])
    for name, value in tensors.items():
        assert unpacked[name].dtype == value.dtype and np.array_equal(unpacked[name], value)
    assert unpacked["encoder.w"].flags.writeable  # copies, not views on the received frame
    bad = [[*row[:3], row[3] + 1] if row[0] == "actor.b" else row for row in manifest]
    with pytest.raises(WireError, match="outside the blob"):
        unpack_weights(bad, blob)
    with pytest.raises(WireError, match="manifest"):
        unpack_weights(manifest[:2], blob)  # bytes left over
    with pytest.raises(WireError):
        unpack_weights([["x", "float32", [10**9], 0]], blob)
