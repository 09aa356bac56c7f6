"""The incremental replay log: each append writes only the slots written since the last one (plus
the one slot that was still waiting for its step record), and a restore from any checkpoint point
rebuilds the buffer exactly, across ring wraparound and an open episode."""

import numpy as np
import pytest
import torch

from learner.replay import ReplayBuffer
from learner.replay_log import ReplayLog

IMAGES = {"front": (4, 4, 3)}


def frame_obs(value: float) -> dict:
    return {
        "state": np.full(3, value, np.float32),
        "images": {"front": np.full((4, 4, 3), int(value) % 256, np.uint8)},
    }


def stream(
    buffer: ReplayBuffer, rng: np.random.Generator, steps: int, episode_length: int, counter: list
) -> None:
    """`steps` more env steps; episodes of `episode_length` steps, the last one possibly left open."""
    for _ in range(steps):
        if counter[1] == 0:
            assert buffer.start_episode(frame_obs(counter[0]))
        counter[0] += 1
        counter[1] += 1
        done = counter[1] == episode_length
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        assert buffer.add(action, float(counter[0]), done, False, frame_obs(counter[0]))
        if done:
            counter[1] = 0


def new_buffer(seed: int = 5) -> ReplayBuffer:
    return ReplayBuffer(50, 3, 2, IMAGES, n_step=3, gamma=0.9, seed=seed)


def assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (len(a), a.written, a.rejected) == (len(b), b.written, b.rejected)
    x, y = a.sample(128), b.sample(128)
    for name in ("state", "action", "reward", "discount", "terminated", "truncated", "next_state"):
        assert torch.equal(getattr(x, name), getattr(y, name)), name
    assert torch.equal(x.images["front"], y.images["front"])
    assert torch.equal(x.next_images["front"], y.next_images["front"])


def test_appends_write_only_new_slots_and_restore_exactly_across_wraparound(tmp_path):
    rng = np.random.default_rng(0)
    buffer, log, counter = new_buffer(), ReplayLog(tmp_path / "log"), [0, 0]
    checkpoints = []
    for steps in (17, 23, 31, 9):  # 80 steps of 7-step episodes: 80 + 12 slots > capacity 50
        stream(buffer, rng, steps, episode_length=7, counter=counter)
        end = log.append(buffer)
        checkpoints.append((end, buffer.meta_state_dict(), new_copy_of(buffer)))
    ranges = [(first, end) for first, end, _ in log.segments()]
    # Each segment starts one slot before the previous end (that slot got its step record later).
    assert ranges[0][0] == 0
    assert [first for first, _ in ranges[1:]] == [end - 1 for _, end in ranges[:-1]]
    assert [end for _, end in ranges] == [end for end, _, _ in checkpoints]
    # Writing 9 steps added 9 + 1 slots (one episode start): the last segment holds 10 + 1.
    last = torch.load(log.segments()[-1][2], weights_only=True)
    assert last["end"] - last["first"] == 11

    # The open episode carries on after a restore, as in the original.
    restored = new_buffer(seed=99)
    ReplayLog(tmp_path / "log").restore(restored, checkpoints[-1][0], checkpoints[-1][1])
    for b in (buffer, restored):
        assert b.add(np.zeros(2, np.float32), 1.0, False, False, frame_obs(500))
    assert_same(buffer, restored)
    # Every earlier point restores too (newest first: a restore drops the segments after it).
    for end, meta, expected in reversed(checkpoints):
        restored = new_buffer(seed=99)
        ReplayLog(tmp_path / "log").restore(restored, end, meta)
        assert_same(restored, expected)


def new_copy_of(buffer: ReplayBuffer) -> ReplayBuffer:
    copy = new_buffer()
    copy.load_state_dict({k: v for k, v in buffer.state_dict().items()})
    return copy


def test_restore_drops_segments_written_after_the_checkpoint_and_prune_keeps_what_is_needed(tmp_path):
    rng = np.random.default_rng(1)
    buffer, log, counter = new_buffer(), ReplayLog(tmp_path / "log"), [0, 0]
    stream(buffer, rng, 30, episode_length=6, counter=counter)
    end, meta, expected = log.append(buffer), buffer.meta_state_dict(), new_copy_of(buffer)
    stream(buffer, rng, 12, episode_length=6, counter=counter)
    log.append(buffer)  # a crash before this checkpoint committed: its segment is stale
    restored = new_buffer(seed=7)
    resumed_log = ReplayLog(tmp_path / "log")
    resumed_log.restore(restored, end, meta)
    assert_same(restored, expected)
    assert [segment_end for _, segment_end, _ in resumed_log.segments()] == [end]

    # Wholly overwritten segments go once no kept checkpoint needs them.
    for _ in range(4):
        stream(buffer, rng, 30, episode_length=6, counter=counter)
        log.append(buffer)
    before = log.segments()
    log.prune(capacity=50, keep_from=log.end)
    after = log.segments()
    assert [s for s in before if s[1] > log.end - 50] == after and len(after) < len(before)


def test_restore_refuses_a_log_with_a_gap(tmp_path):
    buffer, log, counter = new_buffer(), ReplayLog(tmp_path / "log"), [0, 0]
    for _ in range(3):
        stream(buffer, np.random.default_rng(2), 10, episode_length=5, counter=counter)
        log.append(buffer)
    log.segments()[1][2].unlink()
    with pytest.raises(ValueError, match="missing"):
        ReplayLog(tmp_path / "log").restore(new_buffer(), log.end, buffer.meta_state_dict())
