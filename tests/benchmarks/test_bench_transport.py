"""`realrl bench transport` at CI size: the real server, journal, replay and actor transport on
loopback finish (every sent step stored: the ingest wait ends only then) and print the contract."""

import json

from realrl.cli import main


def test_bench_transport_small_run_prints_the_contract(capsys):
    argv = ["bench", "transport", "--senders", "2", "--steps", "150", "--repeats", "1", "--actors", "1"]
    argv += ["--weights-mb", "1", "--pushes", "3", "--send-steps", "20", "--image-size", "16", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["ingest_runs_steps_per_s"]) == 1 and result["ingest_steps_per_s"] > 0
    assert result["ingest_memory_journal_steps_per_s"] > 0
    assert (result["ingest_senders"], result["cameras"], result["image_shape"]) == (2, 2, [16, 16, 3])
    assert (result["weight_pushes"], result["actors"], result["weight_mb"]) == (3, 1, 1.0)
    assert (
        result["send_steps"] == 20 and 0 < result["send_overhead_median_ms"] <= result["send_overhead_p99_ms"]
    )
    assert 0 < result["weight_push_median_ms"] <= result["weight_push_p99_ms"]
