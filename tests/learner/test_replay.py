"""Replay buffer and RLPD mixed sampling, checked against hand-computed numbers: episode
boundaries, termination vs truncation, n-step returns, wraparound, rejection, memory, threads."""

import io
import threading

import numpy as np
import pytest
import torch

from formats.episodes import Episode, EpisodeWriter
from learner.replay import MixedSampler, ReplayBuffer


def obs(value: float, state_dim: int = 1, images: dict | None = None) -> dict:
    out = {"state": np.full(state_dim, value, np.float32)}
    if images is not None:
        out["images"] = images
    return out


def add_stream(buffer, states, rewards=None, *, terminated=False, truncated=False) -> None:
    """One episode through start_episode/add; action = the state it was taken in; the flags
    apply to the last step only."""
    rewards = rewards if rewards is not None else [float(s) for s in states[:-1]]
    assert buffer.start_episode(obs(states[0], buffer.state_dim))
    for t in range(len(states) - 1):
        last = t == len(states) - 2
        action = np.full(buffer.action_dim, states[t], np.float32)
        stored = buffer.add(
            action, rewards[t], last and terminated, last and truncated, obs(states[t + 1], buffer.state_dim)
        )
        assert stored


def make_episode(states, rewards=None, *, terminated=False, truncated=False, action_dim=1) -> Episode:
    """A state-only recorded episode (state_dim 1); action = the state it was taken in."""
    steps = len(states) - 1
    end = np.arange(steps) == steps - 1
    return Episode(
        states=np.asarray(states, np.float32)[:, None],
        images={},
        action=np.repeat(np.asarray(states[:-1], np.float32)[:, None], action_dim, axis=1),
        reward=np.asarray(rewards if rewards is not None else states[:-1], np.float32),
        terminated=end & terminated,
        truncated=end & truncated,
        success=end & terminated,
        safety_margin=np.ones(steps, np.float32),
        intervened=np.zeros(steps, bool),
    )


def add_episode_or_stream(buffer, how, states, rewards=None, **flags) -> None:
    if how == "stream":
        add_stream(buffer, states, rewards, **flags)
    else:
        buffer.add_episode(make_episode(states, rewards, **flags))


def sample_rows(buffer, batch_size=2048) -> dict[float, dict[str, float]]:
    """Sampled transitions keyed by their start state (all fields as Python floats)."""
    batch = buffer.sample(batch_size)
    rows = {}
    for i in range(len(batch)):
        row = {
            "action": batch.action[i, 0].item(),
            "reward": batch.reward[i].item(),
            "discount": batch.discount[i].item(),
            "terminated": batch.terminated[i].item(),
            "truncated": batch.truncated[i].item(),
            "mask": batch.mask[i].item(),
            "next_state": batch.next_state[i, 0].item(),
        }
        start = batch.state[i, 0].item()
        assert rows.setdefault(start, row) == row, f"start {start} sampled with two different transitions"
    return rows


@pytest.mark.parametrize("how", ["stream", "episode"])
def test_episode_boundaries_never_pair_across(how):
    buffer = ReplayBuffer(64, state_dim=1, action_dim=1)
    # Episode 0 stops without a terminal flag (recording ended), then episode 1 follows in the next slot.
    add_episode_or_stream(buffer, how, [0, 1, 2, 3])
    assert sorted(sample_rows(buffer)) == [0, 1, 2]
    add_episode_or_stream(buffer, how, [100, 101, 102, 103], truncated=True)
    assert len(buffer) == 6
    # Uniform over the 6 starts: each bin (starts t and 100 + t) expects 20_000 of 60_000 draws, sigma ~115.
    counts = torch.bincount(buffer.sample(60_000).state[:, 0].long() % 100, minlength=3)
    assert torch.all((counts - 20_000).abs() < 400), counts
    for _ in range(20):
        batch = buffer.sample(256)
        assert torch.equal(batch.next_state, batch.state + 1)  # never 3 -> 100
        assert torch.equal(batch.action, batch.state)
    rows = sample_rows(buffer)
    assert sorted(rows) == [0, 1, 2, 100, 101, 102]  # final observations 3 and 103 start nothing
    assert rows[2]["next_state"] == 3 and rows[2]["terminated"] == 0 and rows[2]["truncated"] == 0


def test_termination_vs_truncation():
    buffer = ReplayBuffer(64, state_dim=1, action_dim=1, gamma=0.99)
    add_stream(buffer, [0, 1, 2], rewards=[0.0, 1.0], terminated=True)
    add_stream(buffer, [10, 11, 12], rewards=[0.0, 0.5], truncated=True)
    with pytest.raises(RuntimeError, match="start_episode"):  # truncation ended the episode too
        buffer.add(np.zeros(1, np.float32), 0.0, False, False, obs(99))
    add_stream(buffer, [20, 21], rewards=[0.0])  # the reset observation after the time limit
    rows = sample_rows(buffer)
    assert rows[1] == {
        "action": 1.0, "reward": 1.0, "discount": pytest.approx(0.99), "terminated": 1.0,
        "truncated": 0.0, "mask": 0.0, "next_state": 2.0,
    }  # fmt: skip
    # A time limit bootstraps (mask 1) from the real final observation 12, not the reset obs 20.
    assert rows[11] == {
        "action": 11.0, "reward": 0.5, "discount": pytest.approx(0.99), "terminated": 0.0,
        "truncated": 1.0, "mask": 1.0, "next_state": 12.0,
    }  # fmt: skip
    assert rows[0]["terminated"] == rows[0]["truncated"] == 0.0 and rows[0]["mask"] == 1.0


def reference_n_step(states, rewards, terminated, truncated, n, gamma):
    """Plain-loop n-step targets for every start of one episode: start -> (R, discount, term, trunc, next)."""
    out = {}
    for t in range(len(rewards)):
        ret, m, term, trunc = 0.0, 0, False, False
        while m < n and t + m < len(rewards):
            ret += gamma**m * rewards[t + m]
            term, trunc = term or terminated[t + m], trunc or truncated[t + m]
            m += 1
            if term or trunc:
                break
        out[states[t]] = (ret, gamma**m, float(term), float(trunc), states[t + m])
    return out


@pytest.mark.parametrize("how", ["stream", "episode"])
def test_n_step_returns_match_a_plain_loop(how):
    n, gamma = 3, 0.9
    buffer = ReplayBuffer(64, state_dim=1, action_dim=1, n_step=n, gamma=gamma)
    episodes = [
        ([0, 1, 2, 3, 4, 5], [1.0, 2.0, 3.0, 4.0, 5.0], {"terminated": True}),
        ([100, 101, 102, 103, 104], [10.0, 20.0, 30.0, 40.0], {"truncated": True}),
        ([200, 201, 202], [7.0, 8.0], {}),  # recording stopped: returns stop at the stored end
        ([300, 301], [9.0], {"terminated": True}),  # in reach of 201's lookahead grid: must not count
        ([400, 401, 402], [1.0, 2.0], {}),
        ([500, 501], [3.0], {"truncated": True}),  # likewise for 401
    ]
    expected = {}
    for states, rewards, flags in episodes:
        add_episode_or_stream(buffer, how, states, rewards, **flags)
        end = [False] * (len(rewards) - 1)
        term = end + [flags.get("terminated", False)]
        trunc = end + [flags.get("truncated", False)]
        expected.update(reference_n_step(states, rewards, term, trunc, n, gamma))
    assert len(buffer) == 5 + 4 + 2 + 1 + 2 + 1

    rows = sample_rows(buffer, 4096)
    assert sorted(rows) == sorted(expected)
    for start, (ret, discount, term, trunc, next_state) in expected.items():
        row = rows[start]
        assert row["reward"] == pytest.approx(ret, rel=1e-6), start
        assert row["discount"] == pytest.approx(discount, rel=1e-6), start
        assert (row["terminated"], row["truncated"], row["next_state"]) == (term, trunc, next_state), start
    # The same numbers by hand, for a few starts.
    assert rows[0]["reward"] == pytest.approx(1 + 0.9 * 2 + 0.81 * 3) and rows[0]["next_state"] == 3
    assert rows[0]["discount"] == pytest.approx(0.729) and rows[0]["mask"] == 1.0
    assert rows[3]["reward"] == pytest.approx(4 + 0.9 * 5) and rows[3]["discount"] == pytest.approx(0.81)
    assert rows[3]["terminated"] == 1.0 and rows[3]["next_state"] == 5
    assert rows[102]["reward"] == pytest.approx(30 + 0.9 * 40) and rows[102]["next_state"] == 104
    assert (rows[102]["terminated"], rows[102]["truncated"]) == (0.0, 1.0)
    assert rows[200]["reward"] == pytest.approx(7 + 0.9 * 8) and rows[200]["discount"] == pytest.approx(0.81)
    assert rows[200]["next_state"] == 202 and rows[200]["terminated"] == rows[200]["truncated"] == 0.0
    assert rows[201]["reward"] == 8 and rows[201]["discount"] == pytest.approx(0.9)
    assert rows[201]["next_state"] == 202 and rows[201]["terminated"] == 0.0
    assert rows[401]["reward"] == 2 and rows[401]["next_state"] == 402 and rows[401]["truncated"] == 0.0


@pytest.mark.parametrize("how", ["stream", "episode"])
def test_wraparound_overwrites_oldest_and_never_pairs_across(how):
    buffer = ReplayBuffer(10, state_dim=1, action_dim=1, n_step=3, gamma=0.5)
    for episode in range(5):  # 5 episodes x 4 slots = 20 slots written into 10
        add_episode_or_stream(buffer, how, [episode * 100 + t for t in range(4)], terminated=True)
    # Slots keep write positions 10..19: episode 2 keeps t=2,3 (start 202); episodes 3 and 4 whole.
    assert len(buffer) == 1 + 3 + 3
    rows = sample_rows(buffer)
    assert sorted(rows) == [202, 300, 301, 302, 400, 401, 402]
    assert rows[202]["next_state"] == 203 and rows[202]["terminated"] == 1.0
    assert rows[202]["reward"] == 202 and rows[202]["discount"] == 0.5
    assert rows[300]["next_state"] == 303 and rows[300]["reward"] == pytest.approx(
        300 + 0.5 * 301 + 0.25 * 302
    )
    assert rows[402]["next_state"] == 403 and rows[402]["discount"] == 0.5


def test_episode_longer_than_the_buffer_keeps_its_tail():
    buffer = ReplayBuffer(10, state_dim=1, action_dim=1, n_step=3, gamma=0.5)
    assert buffer.start_episode(obs(500))
    for t in range(13):  # observations 500..513 written: slots hold 504..513, the head is 513
        assert buffer.add(np.array([500 + t], np.float32), 1.0, False, False, obs(501 + t))
    assert len(buffer) == 9  # starts 504..512
    batch = buffer.sample(2048)
    step = batch.next_state - batch.state
    # The overwritten slots still hold older observations of the same episode: never reached.
    assert step.min() >= 1 and step.max() <= 3 and batch.next_state.max() == 513
    rows = sample_rows(buffer)
    assert sorted(rows) == list(range(504, 513))
    assert rows[511]["next_state"] == 513 and rows[511]["discount"] == 0.25 and rows[511]["reward"] == 1.5
    buffer.add_episode(make_episode([600 + t for t in range(16)], terminated=True))  # 15 steps, 10 slots
    assert len(buffer) == 9
    assert sorted(sample_rows(buffer)) == list(range(606, 615))


def test_bad_records_are_rejected_counted_and_never_stored():
    buffer = ReplayBuffer(32, state_dim=1, action_dim=1, n_step=3, gamma=0.5)
    a = np.zeros(1, np.float32)
    assert buffer.start_episode(obs(0))
    assert buffer.add(a, 1.0, False, False, obs(1))
    assert not buffer.add(a, float("nan"), False, False, obs(2))  # bad reward; obs 2 starts afresh
    assert buffer.add(a, 2.0, False, False, obs(3))
    assert buffer.add(a, 4.0, True, False, obs(4))
    assert buffer.start_episode(obs(10))
    assert buffer.add(a, 1.0, False, False, obs(11))
    assert not buffer.add(a, 1.0, False, False, obs(float("inf")))  # bad next state: chain broken
    assert not buffer.add(a, 1.0, False, False, obs(13))  # unpaired; 13 starts afresh
    assert buffer.add(a, 8.0, False, False, obs(14))
    assert not buffer.add(np.array([np.nan], np.float32), 1.0, False, False, obs(15))
    assert not buffer.add(np.zeros(2, np.float32), 1.0, False, False, obs(16))  # action shape
    assert not buffer.add(np.zeros(1, np.int64), 1.0, False, False, obs(17))  # action dtype
    assert not buffer.add(a, 1.0, False, False, obs(18, state_dim=2))  # state shape
    assert not buffer.start_episode({"state": np.array([np.inf], np.float32)})
    assert buffer.rejected == 7 and buffer.unpaired == 1
    assert len(buffer) == 5  # 0->1, 2->3, 3->4, 10->11, 13->14
    assert torch.isfinite(buffer.state).all() and torch.isfinite(buffer.reward).all()
    rows = sample_rows(buffer)
    assert sorted(rows) == [0, 2, 3, 10, 13]
    assert rows[0]["next_state"] == 1 and rows[0]["discount"] == 0.5 and rows[0]["reward"] == 1.0  # not -> 2
    assert rows[2]["next_state"] == 4 and rows[2]["reward"] == 2 + 0.5 * 4 and rows[2]["terminated"] == 1
    assert rows[10]["next_state"] == 11 and rows[13]["next_state"] == 14 and rows[13]["reward"] == 8.0
    # A recorded episode with a NaN goes step by step: 21 -> 22 is dropped, 22 starts afresh.
    buffer.add_episode(make_episode([20, 21, 22, 23], rewards=[1.0, float("nan"), 3.0], terminated=True))
    assert buffer.rejected == 8 and len(buffer) == 7 and torch.isfinite(buffer.reward).all()
    rows = sample_rows(buffer)
    assert sorted(rows) == [0, 2, 3, 10, 13, 20, 22]
    assert rows[20]["next_state"] == 21 and rows[20]["reward"] == 1.0 and rows[20]["discount"] == 0.5
    assert rows[22]["next_state"] == 23 and rows[22]["reward"] == 3.0 and rows[22]["terminated"] == 1.0

    pixels = ReplayBuffer(8, state_dim=1, action_dim=1, image_shapes={"front": (4, 4, 3)})
    frame = np.zeros((4, 4, 3), np.uint8)
    assert pixels.start_episode(obs(0, images={"front": frame}))
    assert not pixels.add(a, 0.0, False, False, obs(1, images={"front": frame.astype(np.float32)}))
    assert not pixels.add(a, 0.0, False, False, obs(2, images={"wrist": frame}))
    assert pixels.rejected == 2 and len(pixels) == 0


def test_mixed_sampler_takes_the_configured_share_from_demos():
    demo = ReplayBuffer(64, state_dim=1, action_dim=1, seed=1)
    online = ReplayBuffer(64, state_dim=1, action_dim=1, seed=2)
    sampler = MixedSampler(demo, online)
    with pytest.raises(RuntimeError, match="both"):
        sampler.sample(8)
    add_stream(online, [0, 1, 2, 3])
    assert torch.all(sampler.sample(256).state < 1000)  # no demos yet: all online
    add_stream(demo, [1000, 1001, 1002, 1003], terminated=True)
    batch = sampler.sample(256)
    assert len(batch) == 256 and int((batch.state >= 1000).sum()) == 128
    assert torch.all(batch.state[:128] >= 1000)  # demo half first
    assert torch.equal(batch.next_state, batch.state + 1)
    assert int((MixedSampler(demo, online, 0.25).sample(256).state >= 1000).sum()) == 64
    assert int((MixedSampler(demo, online, 1.0).sample(256).state >= 1000).sum()) == 256
    assert int((MixedSampler(online, demo, 0.0).sample(100).state >= 1000).sum()) == 100
    with pytest.raises(ValueError, match="differ"):
        MixedSampler(demo, ReplayBuffer(64, state_dim=2, action_dim=1))


def test_utd_minibatches_each_keep_the_demo_share():
    # UTD 10 samples one batch of 10 x 256 and splits it: every critic update and the actor's slice
    # get 128 demo rows, as RLPD's per-update 50/50 sampling does, with their own next states.
    demo = ReplayBuffer(64, state_dim=1, action_dim=1, seed=1)
    online = ReplayBuffer(64, state_dim=1, action_dim=1, seed=2)
    add_stream(online, [0, 1, 2, 3])
    add_stream(demo, [1000, 1001, 1002, 1003], terminated=True)
    batch = MixedSampler(demo, online).sample(10 * 256)
    parts = batch.split(10)
    assert [len(part) for part in parts] == [256] * 10
    assert [int((part.state >= 1000).sum()) for part in parts] == [128] * 10
    assert all(torch.equal(part.next_state, part.state + 1) for part in parts)
    assert torch.equal(
        torch.sort(torch.cat([p.state for p in parts]).flatten()).values,
        torch.sort(batch.state.flatten()).values,
    )
    with pytest.raises(ValueError, match="equal parts"):
        batch.split(7)


def test_pixel_buffer_memory_is_the_uint8_frames():
    capacity, state_dim, action_dim = 100_000, 32, 7
    try:
        buffer = ReplayBuffer(
            capacity, state_dim, action_dim, image_shapes={"front": (128, 128, 3), "wrist": (128, 128, 3)}
        )
    except RuntimeError as error:  # pages are never touched, but the address space must exist
        pytest.skip(f"cannot reserve 10 GB of address space here: {error}")
    frames_only = 100_000 * 2 * 128 * 128 * 3  # 9_830_400_000 bytes of uint8 frames
    assert frames_only <= buffer.nbytes <= 1.10 * frames_only
    # Everything else is per slot: state + action float32, reward, two flags, valid (x2), episode
    # id and record id.
    assert buffer.nbytes == frames_only + capacity * (
        4 * state_dim + 4 * action_dim + 4 + 1 + 1 + 1 + 1 + 8 + 8
    )


def pixel_stream(buffer, rng, episodes=6) -> None:
    for e in range(episodes):
        length = int(rng.integers(2, 9))
        states = rng.normal(size=(length + 1, buffer.state_dim)).astype(np.float32)
        states[:, 0] = np.arange(length + 1) + 10 * e
        frames = [np.full((4, 4, 3), int(s[0]), np.uint8) for s in states]
        buffer.start_episode({"state": states[0], "images": {"front": frames[0]}})
        for t in range(length):
            action = rng.uniform(-1, 1, buffer.action_dim).astype(np.float32)
            done = t == length - 1
            buffer.add(action, float(rng.normal()), done and e % 2 == 0, done and e % 2 == 1,
                       {"state": states[t + 1], "images": {"front": frames[t + 1]}})  # fmt: skip


def assert_batches_equal(a, b) -> None:
    for name in ("state", "action", "reward", "discount", "terminated", "truncated", "next_state"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.images["front"], b.images["front"])
    assert torch.equal(a.next_images["front"], b.next_images["front"])


def test_same_seed_same_batches_and_frames_follow_their_states():
    buffers = [
        ReplayBuffer(40, 3, 2, {"front": (4, 4, 3)}, n_step=2, gamma=0.9, seed=seed) for seed in (7, 7, 8)
    ]
    for buffer in buffers:
        pixel_stream(buffer, np.random.default_rng(0))
    assert len(buffers[0]) == len(buffers[2]) > 0
    for _ in range(3):
        a, b, c = (buffer.sample(64) for buffer in buffers)
        assert_batches_equal(a, b)
        assert not torch.equal(a.state, c.state)
        # Each frame was filled with its state's first entry: frames travel with their slot.
        assert torch.equal(a.images["front"][:, 0, 0, 0].float(), a.state[:, 0])
        assert torch.equal(a.next_images["front"][:, 0, 0, 0].float(), a.next_state[:, 0])


def test_state_dict_round_trip_resumes_identically():
    buffer = ReplayBuffer(40, 3, 2, {"front": (4, 4, 3)}, n_step=2, gamma=0.9, seed=3)
    pixel_stream(buffer, np.random.default_rng(1), episodes=8)
    assert buffer.start_episode(
        {"state": np.zeros(3, np.float32), "images": {"front": np.zeros((4, 4, 3), np.uint8)}}
    )
    buffer.sample(16)
    saved = io.BytesIO()
    torch.save(buffer.state_dict(), saved)
    saved.seek(0)
    restored = ReplayBuffer(40, 3, 2, {"front": (4, 4, 3)}, n_step=2, gamma=0.9, seed=99)
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert len(restored) == len(buffer)
    next_obs = {"state": np.ones(3, np.float32), "images": {"front": np.ones((4, 4, 3), np.uint8)}}
    for b in (buffer, restored):  # the open episode carries on after the restore
        assert b.add(np.zeros(2, np.float32), 1.0, False, False, next_obs)
    assert_batches_equal(buffer.sample(64), restored.sample(64))
    with pytest.raises(ValueError, match="config"):
        ReplayBuffer(40, 3, 2, {"front": (4, 4, 3)}, n_step=1).load_state_dict(buffer.state_dict())


def test_load_demos_checks_the_spec(tmp_path):
    writer = EpisodeWriter(tmp_path, task="realrl/PickCube-v0", obs_mode="state", source="test")
    writer.add(make_episode([0, 1, 2, 3], terminated=True, action_dim=2))
    writer.add(make_episode([10, 11, 12], truncated=True, action_dim=2))
    buffer = ReplayBuffer(32, state_dim=1, action_dim=2)
    assert buffer.load_demos(tmp_path) == 2
    assert len(buffer) == 3 + 2
    rows = sample_rows(buffer)
    assert sorted(rows) == [0, 1, 2, 10, 11] and rows[2]["terminated"] == 1.0 and rows[11]["truncated"] == 1.0

    wrong_state = ReplayBuffer(32, state_dim=4, action_dim=2)
    with pytest.raises(ValueError, match=r"'state': \[1\].*'state': \[4\]"):
        wrong_state.load_demos(tmp_path)
    wrong_action = ReplayBuffer(32, state_dim=1, action_dim=3)
    with pytest.raises(ValueError, match=r"'action_dim': 2.*'action_dim': 3"):
        wrong_action.load_demos(tmp_path)
    pixels = ReplayBuffer(32, state_dim=1, action_dim=2, image_shapes={"front": (8, 8, 3)})
    with pytest.raises(ValueError, match=r"'images': \{\}.*'images': \{'front': \[8, 8, 3\]\}"):
        pixels.load_demos(tmp_path)
    assert len(wrong_state) == len(wrong_action) == len(pixels) == 0


def test_concurrent_writer_and_sampler():
    buffer = ReplayBuffer(4096, state_dim=2, action_dim=1, n_step=2, gamma=0.5, seed=5)
    errors = []

    def write():
        try:
            for episode in range(200):  # 200 episodes x 10 steps = 2000 transitions in 2200 slots
                add_stream(buffer, [1000 * episode + t for t in range(11)], terminated=episode % 2 == 0)
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    sampled = 0
    while writer.is_alive() or sampled == 0:
        if len(buffer) == 0:
            continue
        batch = buffer.sample(128)
        # n_step=2 reaches two steps ahead except at an episode's (stored) end, never into another.
        step = batch.next_state[:, 0] - batch.state[:, 0]
        assert torch.all((step == 1) | (step == 2))
        assert torch.equal(batch.discount, 0.5**step)
        assert torch.equal(batch.next_state[:, 0] // 1000, batch.state[:, 0] // 1000)
        assert torch.equal(batch.action[:, 0], batch.state[:, 0])
        sampled += 1
    writer.join()
    assert not errors
    assert len(buffer) == 2000 and buffer.rejected == 0
    batch = buffer.sample(1024)
    assert torch.equal(
        batch.next_state[:, 0] - batch.state[:, 0], torch.where(batch.state[:, 0] % 1000 == 9, 1.0, 2.0)
    )


# -- a residual run's base actions ----------------------------------------------------------------
def test_base_actions_travel_with_their_observations_to_obs_and_next_obs():
    """Base action of observation s is 10 * s: a sampled row's base_action is its obs's, and its
    next_base_action the next obs's, the final observation's included (a truncation bootstraps
    from it), through the step stream and whole episodes, and through a save and load."""
    buffer = ReplayBuffer(32, 1, 1, n_step=2, gamma=0.5, base_action_dim=1)
    stream = [1.0, 2.0, 3.0]
    assert buffer.start_episode({**obs(stream[0]), "base_action": np.float32([10.0])})
    for t in range(2):
        nxt = {**obs(stream[t + 1]), "base_action": np.float32([10 * stream[t + 1]])}
        assert buffer.add(np.float32([stream[t]]), 0.0, False, t == 1, nxt)
    episode = make_episode([5.0, 6.0, 7.0, 8.0], terminated=True)
    with pytest.raises(ValueError, match="stores base actions: the episode has none"):
        buffer.add_episode(episode)
    episode.base_action = np.float32([[50.0], [60.0], [70.0], [80.0]])
    buffer.add_episode(episode)
    restored = ReplayBuffer(32, 1, 1, n_step=2, gamma=0.5, base_action_dim=1)
    restored.load_state_dict(buffer.state_dict())
    for replay in (buffer, restored):
        batch = replay.sample(512)
        rows = {
            (float(s), float(b), float(nb), float(ns))
            for s, b, nb, ns in zip(
                batch.state[:, 0],
                batch.base_action[:, 0],
                batch.next_base_action[:, 0],
                batch.next_state[:, 0],
                strict=True,
            )
        }
        # Two steps ahead (n = 2), or fewer at the episode's end: 2 -> 3 (final), 7 -> 8 (final).
        assert rows == {
            (1.0, 10.0, 30.0, 3.0), (2.0, 20.0, 30.0, 3.0),
            (5.0, 50.0, 70.0, 7.0), (6.0, 60.0, 80.0, 8.0), (7.0, 70.0, 80.0, 8.0),
        }  # fmt: skip
    assert not buffer.start_episode(obs(1.0))  # an observation without its base action: rejected
    assert buffer.rejected == 1
