import json

import numpy as np
import pytest

from formats.episodes import (
    Episode,
    EpisodeFormatError,
    EpisodeWriter,
    iter_episodes,
    load_episode,
    read_manifest,
    summarize,
)


def synthetic_episode(rng, steps=5, cameras=("front", "wrist"), success_at=None) -> Episode:
    success = np.zeros(steps, bool)
    if success_at is not None:
        success[success_at] = True
    return Episode(
        states=rng.normal(size=(steps + 1, 7)).astype(np.float32),
        images={c: rng.integers(0, 256, size=(steps + 1, 8, 8, 3), dtype=np.uint8) for c in cameras},
        action=rng.uniform(-1, 1, size=(steps, 4)).astype(np.float32),
        reward=success.astype(np.float32),
        terminated=success.copy(),
        truncated=np.zeros(steps, bool),
        success=success,
        safety_margin=rng.normal(size=steps).astype(np.float32),
        intervened=rng.integers(0, 2, size=steps).astype(bool),
    )


@pytest.fixture
def written(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 5, success_at=4), synthetic_episode(rng, 3)]
    writer = EpisodeWriter(tmp_path, task="realrl/PickCube-v0", obs_mode="pixels", source="test")
    paths = [writer.add(e) for e in episodes]
    return tmp_path, episodes, paths


def test_round_trip_is_exact(written):
    directory, episodes, _ = written
    loaded = list(iter_episodes(directory))
    assert len(loaded) == 2
    for original, back in zip(episodes, loaded, strict=True):
        for name, array in original.arrays().items():
            np.testing.assert_array_equal(back.arrays()[name], array)
            assert back.arrays()[name].dtype == array.dtype


def test_manifest_and_summary(written):
    directory, _, _ = written
    manifest = read_manifest(directory)
    assert [e["length"] for e in manifest["episodes"]] == [5, 3]
    assert manifest["obs_spec"] == {"state": [7], "images": {"front": [8, 8, 3], "wrist": [8, 8, 3]}}
    summary = summarize(directory)
    assert summary["episodes"] == 2 and summary["transitions"] == 8
    assert summary["success_rate"] == 0.5 and summary["mean_length"] == 4.0 and summary["mean_return"] == 0.5
    assert not list(directory.glob(".*.tmp"))  # no temp files left behind


def test_corrupted_file_is_named(written):
    directory, _, paths = written
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    entries = read_manifest(directory)["episodes"]
    load_episode(directory, entries[0])  # the intact one still loads
    with pytest.raises(EpisodeFormatError, match="episode_000001.npz"):
        load_episode(directory, entries[1])
    # Even without the checksum, the zip's own CRC catches the damage and names the file.
    with pytest.raises(EpisodeFormatError, match="episode_000001.npz"):
        load_episode(directory, entries[1], verify=False)


def test_truncated_file_is_named(written):
    directory, _, paths = written
    paths[0].write_bytes(paths[0].read_bytes()[:100])
    with pytest.raises(EpisodeFormatError, match="episode_000000.npz"):
        list(iter_episodes(directory, verify=False))


def test_missing_file_and_bad_manifest(written, tmp_path_factory):
    directory, _, paths = written
    paths[1].unlink()
    with pytest.raises(EpisodeFormatError, match="episode_000001.npz.*missing"):
        list(iter_episodes(directory))
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(EpisodeFormatError, match="manifest.json"):
        read_manifest(directory)
    with pytest.raises(EpisodeFormatError, match="no manifest"):
        read_manifest(tmp_path_factory.mktemp("empty"))


def test_append_continues_and_refuses_other_tasks(written):
    directory, _, _ = written
    rng = np.random.default_rng(1)
    writer = EpisodeWriter(directory, task="realrl/PickCube-v0", obs_mode="pixels", source="test")
    assert writer.add(synthetic_episode(rng)).name == "episode_000002.npz"
    assert summarize(directory)["episodes"] == 3
    with pytest.raises(EpisodeFormatError, match="PegInsert"):
        EpisodeWriter(directory, task="realrl/PegInsert-v0", obs_mode="pixels", source="test")
    with pytest.raises(EpisodeFormatError, match="obs spec"):
        writer.add(synthetic_episode(rng, cameras=("front",)))


def test_inconsistent_episode_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    episode = synthetic_episode(rng)
    episode.states = episode.states[:-1]  # T states for T actions: the final observation is missing
    writer = EpisodeWriter(tmp_path, task="realrl/PickCube-v0", obs_mode="pixels", source="test")
    with pytest.raises(EpisodeFormatError, match="T\\+1"):
        writer.add(episode)
    assert (
        json.loads(
            (tmp_path / "manifest.json").read_text()
            if (tmp_path / "manifest.json").exists()
            else '{"episodes": []}'
        )["episodes"]
        == []
    )
