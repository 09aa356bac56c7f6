"""Actor and learner as real processes over loopback ZeroMQ, with faults injected: the learner
SIGKILLed and resumed, an actor SIGKILLed and restarted, a fuzzer on the learner's socket, CURVE
keys. The acceptance bar everywhere: every step an actor recorded is in the learner's replay
buffer exactly once (compared by record id), and the learner keeps serving."""

import json
import signal
import subprocess
import sys

from cluster import free_port, latest_row, metrics, stop, stored_steps, wait_for


def sent_kinds(sent: dict[str, int]) -> list[str]:
    """The rejection reasons the fuzzer's messages should have been counted under."""
    return [kind for kind, count in sent.items() if kind != "invalid" and count > 0]


def actor_steps(out, actor: str) -> int:
    return latest_row(out).get("actors", {}).get(actor, {}).get("steps_stored", 0)


def assert_exactly_once(found: dict, actor: str, session: str, recorded: int) -> None:
    seqs = found[(actor, session)]
    assert len(seqs) == len(set(seqs)), f"{actor}/{session}: duplicated records"
    assert sorted(seqs) == list(range(recorded)), (
        f"{actor}/{session}: {len(seqs)} stored of {recorded} recorded"
    )


def test_train_with_two_actor_processes_end_to_end(tmp_path):
    """`realrl train --actors 2`: steps flow, weights arrive and their version advances, success is
    logged, and at the end each actor's every step was acked and stored."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "2", "--out", str(out), "--json"]
    command += ["--task", "PickCube", "--obs", "state", "--demo-episodes", "2", "--steps", "300"]
    command += [
        "--actor-hz",
        "40",
        "--learning-starts",
        "32",
        "--batch-size",
        "32",
        "--agent.hidden",
        "32",
        "32",
    ]
    command += ["--log-every", "50", "--eval-every", "150", "--eval-episodes", "1", "--weights-every", "5"]
    result = subprocess.run(command, capture_output=True, timeout=240)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout.decode().splitlines()[-1])
    finals = summary["actor_processes"]
    assert [f["actor_id"] for f in finals] == ["actor-0", "actor-1"]
    for final in finals:
        assert final["steps_recorded"] > 50
        assert final["steps_acked"] == final["steps_recorded"] and final["steps_spooled"] == 0
        assert final["policy_version"] > 0  # weights were pushed after updates and swapped in
        stats = summary["actors"][final["actor_id"]]
        assert stats["steps_stored"] == stats["steps_received"] == final["steps_recorded"]
    assert summary["env_steps"] == sum(f["steps_recorded"] for f in finals)
    rows = metrics(out)
    versions = [
        r["actors"]["actor-0"]["policy_version"] for r in rows if "actors" in r and "actor-0" in r["actors"]
    ]
    assert versions[-1] > versions[0] >= 0  # the version that produced the steps advances
    evals = [r for r in rows if "eval_return" in r]
    assert evals and all(0.0 <= r["success_rate"] <= 1.0 for r in evals)
    assert any("success_rate" in s for r in rows if "actors" in r for s in r["actors"].values())
    found = stored_steps(out)
    for final in finals:
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])


def test_learner_sigkill_and_resume_stores_every_step_exactly_once(processes, tmp_path):
    out, port = tmp_path / "run", free_port()
    learner = processes.learner("learner", out, port)
    actors = [processes.actor(name, port, "--control-hz", "60") for name in ("a0", "a1")]
    wait_for(lambda: (out / "checkpoints" / "latest").exists() and latest_row(out).get("env_steps", 0) >= 250,
             90, "a checkpoint and 250 steps", processes)  # fmt: skip
    learner.kill()  # SIGKILL: no checkpoint, no goodbye; acked steps after the checkpoint are only journaled
    learner.wait()
    before = latest_row(out)["env_steps"]
    restarted = processes.learner("learner-resumed", out, port, "--resume")
    wait_for(lambda: latest_row(out).get("env_steps", 0) >= before + 200, 90, "steps after resume", processes)
    finals = [stop(actor)[1] for actor in actors]  # the same actor processes, reconnected
    code, summary = stop(restarted)
    assert code == 0, processes.log("learner-resumed")[-2000:]
    found = stored_steps(out)
    for final in finals:
        assert final["steps_acked"] == final["steps_recorded"] > 300 and final["steps_spooled"] == 0
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])
        assert summary["actors"][final["actor_id"]]["steps_stored"] == final["steps_recorded"]
    assert len(found) == 2
    # The resumed learner rebuilt what was acked after its checkpoint from the journal.
    assert "journaled step records" in processes.log("learner-resumed")


def test_actor_killed_mid_episode_and_restarted_is_a_new_session(processes, tmp_path):
    """The learner is frozen (SIGSTOP) so the actor's last steps sit unacked in its spool, then the
    actor is SIGKILLed mid-episode. Its restart is a new session that is accepted at once and first
    resends the old session's spooled steps; nothing is lost or stored twice."""
    import time

    out, port = tmp_path / "run", free_port()
    learner = processes.learner("learner", out, port)
    first = processes.actor("a0", port, "--control-hz", "60")
    wait_for(lambda: actor_steps(out, "a0") >= 120, 90, "the first session's steps", processes)
    learner.send_signal(signal.SIGSTOP)
    time.sleep(1.0)  # the actor keeps acting: ~60 steps go to its spool, unacked
    first.kill()  # mid-episode: nothing is flushed, no goodbye
    first.wait()
    learner.send_signal(signal.SIGCONT)
    updates_at_kill = latest_row(out)["updates"]
    second = processes.actor("a0", port, "--control-hz", "60")  # same id and spool: a new session
    stored_first = actor_steps(out, "a0")
    wait_for(lambda: actor_steps(out, "a0") >= stored_first + 150, 90, "the new session's steps", processes)
    _, final = stop(second)
    code, summary = stop(learner)
    assert code == 0
    assert summary["updates"] > updates_at_kill  # training went on through the actor's death
    assert "will be resent" in processes.log("a0")
    found = stored_steps(out)
    sessions = {session for actor, session in found if actor == "a0"}
    assert len(sessions) == 2 and final["session"] in sessions
    assert_exactly_once(found, "a0", final["session"], final["steps_recorded"])
    (old,) = sessions - {final["session"]}
    old_seqs = found[("a0", old)]
    # The killed session's spooled steps were resent by the new process: an unbroken prefix, once each.
    assert sorted(old_seqs) == list(range(len(old_seqs))) and len(old_seqs) >= 150


def test_fuzzing_the_learner_socket_while_a_real_actor_streams(processes, tmp_path):
    from fuzz_messages import fuzz_learner

    out, port = tmp_path / "run", free_port()
    learner = processes.learner("learner", out, port)
    actor = processes.actor("a0", port, "--control-hz", "60")
    wait_for(lambda: actor_steps(out, "a0") >= 50, 90, "the actor streaming", processes)
    sent = fuzz_learner(f"tcp://127.0.0.1:{port}", seed=0, messages=600)
    streamed = actor_steps(out, "a0")
    wait_for(lambda: actor_steps(out, "a0") >= streamed + 100, 60, "steps after the fuzz", processes)
    assert learner.poll() is None
    _, final = stop(actor)
    code, summary = stop(learner)
    assert code == 0
    rejected = latest_row(out)["rejected_messages"]
    assert len(sent_kinds(sent)) == 11  # every kind of bad input was sent
    for reason in sent_kinds(sent):
        assert rejected.get(reason, 0) > 0, (reason, rejected)
    assert sum(rejected.values()) >= sent["invalid"] * 0.9
    assert final["steps_acked"] == final["steps_recorded"]
    assert_exactly_once(stored_steps(out), "a0", final["session"], final["steps_recorded"])
    assert summary["actors"]["a0"]["rejected"] == 0
    assert "rejected a message" in processes.log("learner")


def test_curve_keys_let_the_allowed_actor_in_and_keep_a_stranger_out(processes, tmp_path):
    keys, allow = tmp_path / "keys", tmp_path / "allow"
    for name in ("learner", "robot-1", "stranger"):
        subprocess.run(
            [sys.executable, "-m", "realrl.cli", "keys", "generate", str(keys), "--name", name], check=True
        )
    allow.mkdir()
    (allow / "robot-1.key").write_bytes((keys / "robot-1.key").read_bytes())
    out, port = tmp_path / "run", free_port()
    curve = ["--curve-secret", str(keys / "learner.key_secret"), "--allow-keys", str(allow)]
    learner = processes.learner("learner", out, port, *curve)
    allowed = processes.actor(
        "robot-1",
        port,
        "--curve-secret",
        str(keys / "robot-1.key_secret"),
        "--learner-key",
        str(keys / "learner.key"),
    )
    stranger = processes.actor(
        "stranger",
        port,
        "--curve-secret",
        str(keys / "stranger.key_secret"),
        "--learner-key",
        str(keys / "learner.key"),
    )
    plaintext = processes.actor("plain", port)
    wait_for(lambda: actor_steps(out, "robot-1") >= 100, 90, "the allowed actor streaming", processes)
    finals = {
        name: stop(p)[1] for name, p in (("robot-1", allowed), ("stranger", stranger), ("plain", plaintext))
    }
    code, summary = stop(learner)
    assert code == 0
    assert finals["robot-1"]["steps_acked"] == finals["robot-1"]["steps_recorded"] >= 100
    assert finals["robot-1"]["policy_version"] >= 0
    for name in ("stranger", "plain"):  # no welcome, so no weights and not a single step
        assert finals[name] == {**finals[name], "steps_recorded": 0, "steps_acked": 0, "policy_version": -1}
    assert set(summary["actors"]) == {"robot-1"}
    assert all(not name.startswith(("stranger", "plain")) for name in latest_row(out)["actors"])


def test_sigterm_stops_the_actor_with_its_final_json_line(processes, tmp_path):
    """With no learner at all the actor waits for one; SIGTERM still gives the final line at once."""
    actor = processes.actor("lonely", free_port())
    wait_for(
        lambda: "waiting for the learner" in processes.log("lonely"), 60, "the actor to start", processes
    )
    code, final = stop(actor, signal.SIGTERM, timeout=30)
    assert code == 0
    assert final["actor_id"] == "lonely" and final["steps_recorded"] == 0 and final["steps_spooled"] == 0
