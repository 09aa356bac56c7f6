"""A frozen encoder computed once per frame: the replay's cached maps equal a fresh pass of the
trunk over the stored frames (after a stream, a bulk episode, a ring wrap and a restore), the
update reads the cache and never the frames, a map shift is DrQ's shift at the map's resolution,
and the policy acts from frames exactly as the head sees the cache."""

import numpy as np
import pytest
import torch

from formats.episodes import Episode
from learner.augment import random_shift
from learner.batch import Batch
from learner.configs import SACConfig
from learner.loop import EncoderMaps
from learner.replay import ReplayBuffer
from learner.sac import SACAlgorithm
from policies import PolicySpec
from policies.encoder_files import save_encoder_model
from policies.encoders import PRETRAINED_PREFIX, FrameTrunk
from policies.sac import stack_images

SIZE, CAMERAS = 32, ("front", "wrist")
SHAPES = {c: (SIZE, SIZE, 3) for c in CAMERAS}


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "trunk.pt"
    save_encoder_model(path, FrameTrunk(SIZE, channels=8), CAMERAS, {"objective": "none"})
    return path


def agent_for(model, **agent) -> SACAlgorithm:
    # float32 trunk: on a CPU with native bf16 the default autocast would round the maps to bf16 first.
    config = SACConfig(
        encoder=f"{PRETRAINED_PREFIX}{model}", critics=2, hidden=(32,), image_bf16=False, **agent
    )
    return SACAlgorithm(config, PolicySpec(3, 2, CAMERAS, SIZE), "cpu", seed=0)


def frames(rng, n):
    return {c: rng.integers(0, 256, (n, *SHAPES[c]), dtype=np.uint8) for c in CAMERAS}


def episode(rng, steps) -> Episode:
    end = np.arange(steps) == steps - 1
    return Episode(
        states=rng.standard_normal((steps + 1, 3)).astype(np.float32),
        images=frames(rng, steps + 1),
        action=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
        reward=np.zeros(steps, np.float32),
        terminated=end,
        truncated=np.zeros(steps, bool),
        success=end,
        safety_margin=np.ones(steps, np.float32),
        intervened=np.zeros(steps, bool),
    )


def cached_buffer(agent, capacity=40) -> ReplayBuffer:
    return ReplayBuffer(capacity, 3, 2, SHAPES, frame_maps=EncoderMaps(agent.encoder, torch.device("cpu")))


def fresh_maps(agent, buffer, slots) -> dict[str, torch.Tensor]:
    """The frozen trunk run now on the frames the buffer holds in `slots`, one frame at a time."""
    trunk = agent.encoder.image_encoder.trunk
    out = {}
    for c in CAMERAS:
        images = buffer.images[c][slots].permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            out[c] = torch.cat([trunk(image[None]) for image in images])
    return out


def assert_cache_matches(agent, buffer, slots):
    expected = fresh_maps(agent, buffer, slots)
    for c in CAMERAS:
        cached = buffer.maps[c][slots]
        assert cached.dtype == torch.float16 and cached.shape == (len(slots), 8, 16, 16)
        # fp16 keeps 11 significant bits: relative error <= 2^-11 of the value, plus a small floor.
        torch.testing.assert_close(cached.float(), expected[c], rtol=2**-10, atol=1e-4)


def test_cached_maps_equal_a_fresh_trunk_pass_for_streamed_bulk_wrapped_and_restored_frames(model):
    agent = agent_for(model)
    rng = np.random.default_rng(0)
    buffer = cached_buffer(agent, capacity=40)
    buffer.add_episode(episode(rng, 12))  # bulk: slots 0..12
    stream = frames(rng, 6)
    buffer.start_episode({"state": np.zeros(3, np.float32), "images": {c: stream[c][0] for c in CAMERAS}})
    for t in range(1, 6):
        obs = {"state": np.full(3, t, np.float32), "images": {c: stream[c][t] for c in CAMERAS}}
        assert buffer.add(np.zeros(2, np.float32), 0.0, False, False, obs)  # slots 13..18
    buffer.add_episode(episode(rng, 30))  # wraps: slots 19..39 and 0..9
    assert buffer.written == 13 + 6 + 31
    assert_cache_matches(agent, buffer, torch.arange(40))
    # The frames it stored are the ones given: slot 13 holds the stream's first frame.
    assert np.array_equal(buffer.images["front"][13].numpy(), stream["front"][0])

    restored = cached_buffer(agent, capacity=40)
    restored.import_slots(buffer.export_slots(0, buffer.written))
    restored.load_meta_state_dict(buffer.meta_state_dict())
    assert "image_front" in buffer.export_slots(0, 1) and not any(
        "map" in k for k in buffer.export_slots(0, 1)
    )
    for c in CAMERAS:  # recomputed from the restored frames, not saved
        assert torch.equal(restored.maps[c], buffer.maps[c])


def test_a_sampled_batch_carries_the_cached_maps_and_not_the_frames(model):
    agent = agent_for(model)
    buffer = cached_buffer(agent)
    buffer.add_episode(episode(np.random.default_rng(1), 10))
    batch = buffer.sample(16)
    assert batch.images == {} and batch.next_images == {}
    for row in range(16):  # each row's slot, found by its (random, so unique) state
        slot = int(torch.nonzero((buffer.state == batch.state[row]).all(1))[0])
        for c in CAMERAS:
            assert torch.equal(batch.maps[c][row], buffer.maps[c][slot])
            assert torch.equal(batch.next_maps[c][row], buffer.maps[c][(slot + 1) % buffer.capacity])


def test_the_policy_acts_from_frames_as_the_head_sees_the_cache(model):
    agent = agent_for(model)
    rng = np.random.default_rng(2)
    images = {c: torch.from_numpy(f) for c, f in frames(rng, 5).items()}
    state = torch.randn(5, 3)
    cached = agent.encoder.frame_maps(images)
    maps = torch.stack([cached[c].float() for c in CAMERAS])
    live = stack_images(images, CAMERAS).reshape(2, 5, 3, SIZE, SIZE)
    torch.testing.assert_close(agent.encoder(state, live), agent.encoder(state, maps=maps), rtol=0, atol=0)


def test_map_shift_moves_each_frames_maps_by_at_most_the_shift_with_a_replicated_border():
    maps = torch.arange(18 * 4 * 4, dtype=torch.float16).reshape(18, 1, 4, 4)
    shifted = random_shift(maps, 1, torch.Generator().manual_seed(0))
    # Rows are dealt round-robin to the 9 offsets in the order a permutation from the generator gives.
    order = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    for i in range(18):
        dy, dx = (int(v) - 1 for v in divmod(int(order[i % 9]), 3))
        rows = (torch.arange(4) + dy).clamp(0, 3)
        cols = (torch.arange(4) + dx).clamp(0, 3)
        assert torch.equal(shifted[i, 0], maps[i, 0][rows][:, cols])
    assert shifted.dtype == torch.float16
    assert sorted(order.tolist()) == list(range(9))  # the first 9 rows take every offset once


def test_the_update_trains_the_head_on_the_cache_and_leaves_the_trunk_frozen(model):
    agent = agent_for(model)
    buffer = cached_buffer(agent)
    buffer.add_episode(episode(np.random.default_rng(4), 20))
    trunk_before = {k: v.clone() for k, v in agent.encoder.image_encoder.trunk.state_dict().items()}
    head_before = [p.clone() for p in agent.encoder.image_encoder.heads.parameters()]
    batch = buffer.sample(8)
    assert batch.images == {}  # the update has only the maps to read
    metrics = agent.update(batch)
    assert bool(torch.isfinite(metrics["critic_loss"]))
    after = agent.encoder.image_encoder.trunk.state_dict()
    assert all(torch.equal(trunk_before[k], after[k]) for k in trunk_before)
    assert all(
        torch.equal(t, agent.target_encoder.image_encoder.trunk.state_dict()[k]) for k, t in after.items()
    )
    changed = [
        not torch.equal(a, p)
        for a, p in zip(head_before, agent.encoder.image_encoder.heads.parameters(), strict=True)
    ]
    assert all(changed)


def test_pushed_weights_leave_out_the_trunk_from_the_model_file(model):
    policy = agent_for(model).policy
    pushed, full = policy.pushed_state_dict(), policy.state_dict()
    trunk_keys = {k for k in full if k.startswith("encoder.image_encoder.trunk.")}
    assert trunk_keys and set(pushed) == set(full) - trunk_keys


def test_batch_split_and_cat_carry_the_maps():
    maps = {"front": torch.arange(8, dtype=torch.float16).reshape(4, 2)}
    batch = Batch(*(torch.zeros(4) for _ in range(7)), maps=maps, next_maps=maps)
    halves = batch.split(2)
    assert torch.equal(halves[1].maps["front"], maps["front"][1::2])
    assert torch.equal(Batch.cat(halves).maps["front"], torch.cat([maps["front"][0::2], maps["front"][1::2]]))
