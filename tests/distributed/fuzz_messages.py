"""A seeded generator of bad messages for the learner's socket: random bytes, broken headers, wrong
versions, types, dtypes, shapes, NaN, oversized headers, too many frames, steps before hello and
hellos with the wrong observation spec (refused). Each one is invalid in exactly one known way."""

import json

import numpy as np
import zmq

from formats.wire import StepRecord, encode, encode_step

# How long to wait for the learner's welcome, and how long closing a socket waits for its queued
# messages to go out: bounds against a dead learner only, so that on a loaded machine every message
# sent is delivered (the test counts them).
HANG_MS = 300_000


def _header(**fields) -> bytes:
    return json.dumps({"v": 1, "type": "step", "arrays": [], **fields}).encode()


def _step(actor: str, rng, state_dim: int = 0, nan: bool = False) -> list:
    state = rng.standard_normal(state_dim or 23).astype(np.float32)
    if nan:
        state[0] = np.nan
    record = StepRecord(
        actor=actor, session="fuzz", seq=int(rng.integers(0, 100)), episode=0, t=0, state=state,
        images={}, action=np.zeros(4, np.float32), reward=0.0, terminated=False, truncated=False,
    )  # fmt: skip
    return [bytes(f) for f in encode_step(record)]


def bad_messages(rng, actor: str, state_dim: int) -> dict[str, object]:
    """One message builder per kind of bad input, keyed by the reason the learner should count."""
    return {
        "malformed": lambda: [rng.bytes(int(rng.integers(1, 200))) for _ in range(int(rng.integers(1, 4)))],
        "bad_version": lambda: [_header(v=int(rng.integers(2, 99)))],
        "unknown_type": lambda: [_header(type="rm -rf")],
        "bad_dtype": lambda: [_header(arrays=[{"name": "x", "dtype": "object", "shape": [1]}]), b"\0" * 8],
        "bad_shape": lambda: [_header(arrays=[{"name": "x", "dtype": "float32", "shape": [3]}]), b"\0" * 5],
        "header_too_large": lambda: [_header(pad="x" * 70_000)],
        "too_many_frames": lambda: [_header(), *[b"\0"] * 70],
        "nonfinite": lambda: _step(actor, rng, state_dim, nan=True),
        "bad_record": lambda: _step(actor, rng, state_dim + 1),
    }


def fuzz_learner(endpoint: str, seed: int, messages: int) -> dict[str, int]:
    """Send `messages` bad messages from a connection that said hello (as fuzz-0) and one that
    never did; returns how many were sent per kind and in all ('invalid'), once all were delivered."""
    from actors.specs import record_spec
    from envs import make_env

    env = make_env("PickCube", obs_mode="state")
    spec = record_spec(env)
    env.close()
    rng = np.random.default_rng(seed)
    context = zmq.Context()
    greeted, anonymous = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
    for socket in (greeted, anonymous):
        socket.setsockopt(zmq.LINGER, HANG_MS)
        socket.connect(endpoint)
    task = "realrl/PickCube-v0"
    greeted.send_multipart(
        encode("hello", {"actor": "fuzz-0", "session": "fuzz", "task": task, "spec": spec.to_json()})
    )
    if not greeted.poll(HANG_MS):
        raise RuntimeError("the learner did not welcome the fuzzer")
    builders = bad_messages(rng, "fuzz-0", spec.state_dim)
    kinds = sorted(builders)
    sent = dict.fromkeys([*kinds, "no_hello", "refused_hello"], 0)
    for index in range(messages):
        kind = kinds[int(rng.integers(len(kinds)))]
        if index % 20 == 0:  # a step from a connection that never said hello
            anonymous.send_multipart(_step("stranger", rng, spec.state_dim))
            kind = "no_hello"
        elif index % 20 == 1:  # a hello with an observation spec the task does not have
            wrong = {**spec.to_json(), "state_dim": spec.state_dim + 7}
            hello = context.socket(zmq.DEALER)
            hello.setsockopt(zmq.LINGER, HANG_MS)
            hello.connect(endpoint)
            hello.send_multipart(
                encode("hello", {"actor": "fuzz-x", "session": "x", "task": task, "spec": wrong})
            )
            hello.close()
            kind = "refused_hello"
        else:
            greeted.send_multipart(builders[kind]())
        sent[kind] += 1
    greeted.close()
    anonymous.close()
    context.term()
    return {**sent, "invalid": messages}
