"""Issue 10's cases as real processes on loopback: nothing an actor recorded goes missing without a
count, and what cannot work (a shared spool, a wrong task, a key claiming another id, a dead link) is
refused loudly instead of merging, hanging or losing steps. Each test waits for events and asserts
exact accounting; HANG_S only stops a hung test."""

import json
import os
import signal
import socket

from cluster import (
    HANG_S,
    CurveKeys,
    actor_row,
    assert_exactly_once,
    freeze,
    stored_steps,
    wait_for,
)


def accounted(final: dict) -> bool:
    return final["steps_recorded"] == final["steps_acked"] + final["steps_spooled"] + final["steps_dropped"]


def test_a_frozen_learner_fills_a_tiny_spool_and_no_step_goes_uncounted(processes, tmp_path):
    """Learner frozen (SIGSTOP) while two actors stream into 50 kB spools: the default actor holds
    the robot still until acks free room (nothing lost); the `drop` actor goes on and counts what
    it drops. Both final lines add up, and the learner stores exactly the acked records, 0..acked-1
    with no gap (an ack never covers a record the learner did not get)."""
    out = tmp_path / "run"
    learner = processes.learner("learner", out)
    endpoint = processes.endpoint(learner)
    tiny = ["--spool-bytes", "50000"]
    holder = processes.actor("holder", endpoint, *tiny)
    dropper = processes.actor("dropper", endpoint, *tiny, "--on-spool-full", "drop")
    for name in ("holder", "dropper"):
        wait_for(lambda n=name: actor_row(out, n).get("steps_stored", 0) >= 50, HANG_S, f"{name} streaming",
                 processes)  # fmt: skip
    freeze(learner)
    wait_for(
        lambda: "holding the robot still" in processes.log("holder"), HANG_S, "holder to hold", processes
    )
    wait_for(lambda: "steps dropped so far" in processes.log("dropper"), HANG_S, "dropper to drop", processes)
    learner.send_signal(signal.SIGCONT)
    wait_for(lambda: "spool has room again" in processes.log("holder"), HANG_S, "holder to resume", processes)
    finals = {name: processes.stop(p)[1] for name, p in (("holder", holder), ("dropper", dropper))}
    code, _ = processes.stop(learner)
    assert code == 0
    for final in finals.values():
        assert accounted(final), final
        assert final["steps_spooled"] == 0  # each waited for its acks
    assert finals["holder"]["steps_dropped"] == 0
    assert finals["dropper"]["steps_dropped"] > 0
    found = stored_steps(out)
    for name, final in finals.items():
        assert_exactly_once(found, name, final["session"], final["steps_acked"])
    log = processes.log("learner")
    for name in finals:  # a hello repeated while the learner was stalled is answered, not logged again
        assert log.count(f"actor {name} connected") <= 1 + log.count(f"actor {name} silent for")


def test_two_actors_with_default_ids_on_one_host_get_their_own_id_and_spool(processes, tmp_path):
    """No --actor-id, no --spool, one host: each actor takes its own slot (<host>-0, <host>-1),
    both stream everything; a third given the first one's spool refuses to start, naming its PID."""
    processes.env["HOME"] = str(tmp_path / "home")  # the default spool root lives under ~/.cache
    out = tmp_path / "run"
    learner = processes.learner("learner", out)
    endpoint = processes.endpoint(learner)
    plain = ["--task", "PickCube", "--obs", "state", "--heartbeat-s", "0.2", "--learner-timeout-s", "1.5",
             "--wait-acks-s", "120", "--learner", endpoint]  # fmt: skip
    first = processes.start("first", "actor", *plain)
    processes.wait_ready(first)  # holds slot 0 from here on
    second = processes.start("second", "actor", *plain)
    host = socket.gethostname()
    for name in (f"{host}-0", f"{host}-1"):
        wait_for(lambda n=name: actor_row(out, n).get("steps_stored", 0) >= 50, HANG_S, f"{name} streaming",
                 processes)  # fmt: skip
    slot0 = tmp_path / "home" / ".cache" / "realrl" / "spool" / f"{host}-0"
    third = processes.start("third", "actor", *plain, "--spool", str(slot0))
    third.communicate(timeout=HANG_S)
    assert third.returncode == 2
    assert f"is in use by another process (PID {first.pid})" in processes.log("third")
    finals = [processes.stop(p)[1] for p in (first, second)]
    processes.stop(learner)
    assert {f["actor_id"] for f in finals} == {f"{host}-0", f"{host}-1"}
    found = stored_steps(out)
    for final in finals:
        assert final["steps_acked"] == final["steps_recorded"] > 0 and final["steps_spooled"] == 0
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])


def test_an_actor_of_another_task_is_refused_naming_both(processes, tmp_path):
    learner = processes.learner("learner", tmp_path / "run")
    endpoint = processes.endpoint(learner)
    wrong = processes.actor("peg", endpoint, "--task", "PegInsert")  # the later --task wins
    stdout, _ = wrong.communicate(timeout=HANG_S)
    assert wrong.returncode == 2
    final = json.loads(stdout.decode().splitlines()[-1])
    assert final["steps_recorded"] == 0 and final["steps_dropped"] == 0
    error = processes.log("peg").strip().splitlines()[-1]
    assert error.startswith("realrl: error: the learner refused this actor: task mismatch")
    assert "realrl/PickCube-v0" in error and "realrl/PegInsert-v0" in error
    assert "refused_hello" in processes.log("learner")
    processes.stop(learner)


def test_an_allowed_key_cannot_claim_another_actors_id(processes, tmp_path):
    """robot-2's key saying hello as robot-1 is refused (the actor exits 2, the learner logs it);
    the real robot-1 streams on undisturbed, every step stored once."""
    keys = CurveKeys(tmp_path, ["robot-1", "robot-2"], allowed=["robot-1", "robot-2"])
    out = tmp_path / "run"
    learner = processes.learner("learner", out, *keys.learner_flags())
    endpoint = processes.endpoint(learner)

    robot1 = processes.actor("robot-1", endpoint, *keys.actor_flags("robot-1"))
    wait_for(lambda: actor_row(out, "robot-1").get("steps_stored", 0) >= 50, HANG_S, "robot-1 streaming",
             processes)  # fmt: skip
    impostor = processes.actor("impostor", endpoint, *keys.actor_flags("robot-2"), "--actor-id", "robot-1")
    impostor.communicate(timeout=HANG_S)
    assert impostor.returncode == 2
    assert "does not match its CURVE key (robot-2.key" in processes.log("impostor")
    assert "does not match its CURVE key (robot-2.key" in processes.log("learner")
    _, final = processes.stop(robot1)
    _, summary = processes.stop(learner)
    assert final["steps_acked"] == final["steps_recorded"]
    assert summary["actors"]["robot-1"]["steps_stored"] == final["steps_recorded"]
    assert_exactly_once(stored_steps(out), "robot-1", final["session"], final["steps_recorded"])


def test_a_dead_link_takes_the_actor_down_with_exit_2(processes, tmp_path):
    """An unreadable key kills the transport thread: the actor exits 2 naming why, with its final
    line, instead of waiting for the learner forever."""
    bad_key = tmp_path / "garbage.key_secret"
    bad_key.write_text("not a certificate\n")
    actor = processes.start(
        "broken", "actor", "--learner", f"ipc://{tmp_path}/nobody", "--curve-secret", str(bad_key),
        "--learner-key", str(bad_key),
    )  # fmt: skip
    stdout, _ = actor.communicate(timeout=HANG_S)
    assert actor.returncode == 2
    assert json.loads(stdout.decode().splitlines()[-1])["steps_recorded"] == 0
    assert "realrl: error: the link to the learner failed" in processes.log("broken")


def test_an_unanswered_actor_says_so_after_a_bounded_wait(processes, tmp_path):
    actor = processes.actor("lonely", f"ipc://{tmp_path}/no-learner", "--answer-timeout-s", "0.5")
    wait_for(
        lambda: "no answer from the learner" in processes.log("lonely"), HANG_S, "the warning", processes
    )
    code, final = processes.stop(actor, signal.SIGTERM)
    assert code == 0 and accounted(final)
    assert "A learner with CURVE keys answers only actors with --curve-secret" in processes.log("lonely")


def test_a_second_ctrl_c_interrupts_at_once_with_exit_130(processes, tmp_path):
    """The first Ctrl-C asks the actor to finish: it waits for the acks of a frozen learner; the
    second ends it at once, exit 130, no traceback."""
    out = tmp_path / "run"
    learner = processes.learner("learner", out)
    actor = processes.actor("a0", processes.endpoint(learner))
    wait_for(lambda: actor_row(out, "a0").get("steps_stored", 0) >= 20, HANG_S, "a0 streaming", processes)
    freeze(learner)  # from here on no ack comes: the actor's finish waits (--wait-acks-s 120)
    actor.send_signal(signal.SIGINT)
    wait_for(lambda: "SIGINT: finishing" in processes.log("a0"), HANG_S, "the first Ctrl-C", processes)
    actor.send_signal(signal.SIGINT)
    actor.communicate(timeout=HANG_S)
    assert actor.returncode == 130
    assert "Traceback" not in processes.log("a0") and "realrl: interrupted" in processes.log("a0")
    learner.send_signal(signal.SIGCONT)
    code, _ = processes.stop(learner)
    assert code == 0


def test_train_stops_and_says_why_when_one_of_its_actors_cannot_start(tmp_path):
    """A leftover actor of a killed run still holding actor-0's spool: the new actor-0 exits 2, and
    `realrl train --actors 1` stops with that reason instead of waiting for its steps forever."""
    import subprocess
    import sys

    from formats.files import DirectoryLock

    out = tmp_path / "run"
    held = DirectoryLock(out / "spool" / "actor-0", "spool")  # the leftover (this test process)
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "1", "--out", str(out), "--task",
               "PickCube", "--demo-episodes", "1", "--steps", "1000000", "--agent.hidden", "16",
               "--agent.critics", "2", "--eval-every", "1000000"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=HANG_S)
    held.release()
    error = result.stderr.decode().strip().splitlines()[-1]
    assert result.returncode == 2
    assert error.startswith("realrl: error: actor-0 exited with status 2: realrl: error: spool ")
    assert f"in use by another process (PID {os.getpid()})" in error


def test_the_actors_of_a_killed_train_stop_by_themselves(tmp_path):
    """SIGKILL `realrl train --actors 1`: its actor (started in its own session, so a Ctrl-C reaches
    only the learner) sees it is orphaned, stops with its final accounting and lets go of its spool,
    so a `--resume` can start a new actor on it."""
    import subprocess
    import sys
    from pathlib import Path

    from formats.files import DirectoryLock

    def running(pid: int) -> bool:
        try:  # a zombie is no longer running
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "1", "--out", str(out), "--task",
               "PickCube", "--demo-episodes", "1", "--steps", "1000000", "--agent.hidden", "16",
               "--agent.critics", "2", "--eval-every", "1000000", "--log-every", "20"]  # fmt: skip
    with open(tmp_path / "train.log", "wb") as log:
        train = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: actor_row(out, "actor-0").get("steps_stored", 0) >= 20, HANG_S, "actor-0 streaming")
        actor_pid = int((out / "spool" / "actor-0" / ".lock").read_text())
        train.kill()
        train.wait()
        wait_for(lambda: not running(actor_pid), HANG_S, "the orphaned actor to stop")
    finally:
        train.kill()
    assert f"(PID {train.pid}) is gone: stopping" in (out / "actors" / "actor-0.log").read_text()
    DirectoryLock(out / "spool" / "actor-0", "spool").release()  # free for a resumed run's actor
