"""Scheduled EBS snapshots end to end: failoverd against ec2sim.

What a person relies on: every data volume gets a snapshot tagged with
the service, volume, device, taken-by=failoverd and time; retention by
count deletes only failoverd's own snapshots of this service (the
scenario's hourly snapshots, tagged by someone else, survive); the
pre/post commands run over SSH in order around CreateSnapshot, the post
command even when the snapshot call fails; a run that fell due while the
daemon was down is taken as soon as it starts, and one that is not due
is not."""
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import conftest  # noqa: E402
from conftest import VOLS, creates, events, field, ours  # noqa: E402
from conftest import start_manual as start  # noqa: E402
from conftest import wait_events  # noqa: E402
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402

SCENARIO_SNAPS = set(BASIC["snapshots"].values())


def write_journal(path, fields, seq=1):
    """A journal file as journal.c writes it (see journal.h)."""
    body = "failoverd-journal 1\nseq=%d\n" % seq
    for k, v in fields.items():
        body += "%s=%s\n" % (k, v)
    digest = hashlib.sha256(body.encode()).hexdigest()
    with open(path, "w") as f:
        f.write(body + "end sha256=%s\n" % digest)


def test_snapshot_now_tags_every_data_volume(tmp_path, sim):
    with start(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        out = ctl(d.sock, "snapshot", "web").stdout
        assert VOLS["/dev/sdf"] in out and VOLS["/dev/sdg"] in out
        taken = wait_events(d, "snapshot_taken", 2)
    assert {field(t, "volume") for t in taken} == set(VOLS.values())
    assert {field(t, "trigger") for t in taken} == {"manual"}
    mine = ours(sim)
    assert len(mine) == 2
    by_volume = {s["volume"]: s for s in mine.values()}
    for dev, vid in VOLS.items():
        tags = by_volume[vid]["tags"]
        assert tags["failoverd:service"] == "web"
        assert tags["failoverd:volume"] == vid
        assert tags["failoverd:device"] == dev
        assert tags["failoverd:taken-by"] == "failoverd"
        assert tags["failoverd:time"].endswith("Z")
        # The snapshot holds the volume's data as it was.
        assert by_volume[vid]["data"] == sim.volume(vid)["data"]
    assert not events(d, "snapshot_failed")


def test_schedule_keeps_count_and_never_deletes_others(tmp_path, sim):
    # A run a second, faster than Describe's lag (up to 2 s): retention
    # would count snapshots it cannot see yet. This test is about what
    # retention keeps and deletes, so Describe shows changes at once.
    sim.set_delays(describe_lag=0.0)
    with start(tmp_path, sim, snapshot="interval = 1.0; keep = 2;") as d:
        # Four runs: the first two stay, then each run deletes the
        # oldest of each volume.
        wait_events(d, "snapshot_taken", 8, timeout=60)
        wait_events(d, "snapshot_deleted", 4, timeout=30)
        deleted = {field(x, "snapshot") for x in
                   events(d, "snapshot_deleted")}
        listing = json.loads(ctl(d.sock, "snapshots", "web",
                                 "--json").stdout)
    assert not deleted & SCENARIO_SNAPS
    state = sim.state()["snapshots"]
    # The scenario's snapshots (tagged failoverd:service=web by someone
    # else, without taken-by) and the AMI's root snapshot survive.
    for sid in SCENARIO_SNAPS:
        assert sid in state
    assert "snap-0aaaaaaaaaaaaaaa0" in state
    for sid in deleted:
        assert sid not in state
    per_volume = {}
    for s in ours(sim).values():
        per_volume.setdefault(s["volume"], []).append(s)
    # Retention ran after the last run's snapshots were made: at most
    # keep completed ones per volume, plus any taken since.
    for vid in VOLS.values():
        completed = [s for s in per_volume[vid]
                     if s["state"] == "completed"]
        assert 1 <= len(completed) <= 3, per_volume[vid]
    assert listing["service"] == "web"
    assert listing["last_ok"] > 0
    shown = {s["id"]: s for s in listing["snapshots"]}
    for sid in SCENARIO_SNAPS & set(shown):
        assert shown[sid]["failoverd"] is False
    assert not events(d, "snapshot_failed")


def test_hooks_run_in_order_around_the_snapshot(tmp_path, sim):
    log = tmp_path / "hooks.log"
    hooks = (f'pre_command = "echo pre $(date +%s.%N) >> {log}"; '
             f'post_command = "echo post $(date +%s.%N) >> {log}"; '
             f'hook_timeout = 10; hook_probe = "shell";')
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.clear_requests()
        ctl(d.sock, "snapshot", "web")
        wait_events(d, "snapshot_taken", 2)
        d.wait_for(r"snapshot post_command done", timeout=20)
    lines = log.read_text().split("\n")
    assert [x.split()[0] for x in lines if x] == ["pre", "post"]
    pre_t = float(lines[0].split()[1])
    post_t = float(lines[1].split()[1])
    reqs = sim.requests(action="CreateSnapshot")
    assert len(reqs) == 2
    for r in reqs:
        assert pre_t <= r["time"] <= post_t


def test_post_command_runs_when_the_snapshot_fails(tmp_path, sim):
    log = tmp_path / "hooks.log"
    hooks = (f'pre_command = "echo pre >> {log}"; '
             f'post_command = "echo post >> {log}"; hook_timeout = 10;')
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.fault(kind="error", action="CreateSnapshot",
                  code="InvalidVolume.NotFound", status=400,
                  message="The volume does not exist.", count=None)
        ctl(d.sock, "snapshot", "web")
        failed = wait_events(d, "snapshot_failed", 1)[0]
        sim.clear_faults()
    assert log.read_text() == "pre\npost\n"
    assert "CreateSnapshot" in field(failed, "reason")
    assert "InvalidVolume.NotFound" in field(failed, "reason")
    assert not events(d, "snapshot_taken")
    assert not ours(sim)


def test_post_command_runs_when_the_pre_command_fails(tmp_path, sim):
    log = tmp_path / "hooks.log"
    hooks = (f'pre_command = "echo pre >> {log}; exit 3"; '
             f'post_command = "echo post >> {log}"; hook_timeout = 10;')
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.clear_requests()
        ctl(d.sock, "snapshot", "web")
        failed = wait_events(d, "snapshot_failed", 1)[0]
    assert log.read_text() == "pre\npost\n"
    assert "pre_command failed" in field(failed, "reason")
    assert "exit status 3" in field(failed, "reason")
    # No inconsistent snapshot was taken.
    assert creates(sim) == []


def test_run_missed_while_down_is_taken_at_start(tmp_path, sim):
    state = tmp_path / "state"
    state.mkdir()
    long_ago = int(time.time()) - 7200
    write_journal(state / "web.snapshot.journal",
                  {"last_ok": long_ago, "last_attempt": long_ago,
                   "last_result": "ok", "last_error": ""})
    with start(tmp_path, sim, snapshot="interval = 3600;") as d:
        taken = wait_events(d, "snapshot_taken", 2, timeout=20)
    assert {field(t, "trigger") for t in taken} == {"schedule"}
    assert len(ours(sim)) == 2


def test_run_not_due_is_not_taken_at_start(tmp_path, sim):
    state = tmp_path / "state"
    state.mkdir()
    recent = int(time.time()) - 60
    write_journal(state / "web.snapshot.journal",
                  {"last_ok": recent, "last_attempt": recent,
                   "last_result": "ok", "last_error": ""})
    with start(tmp_path, sim, snapshot="interval = 3600;") as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        listing = ctl(d.sock, "snapshots", "web").stdout
        d.drain(2.0)
    assert not events(d, "snapshot_taken")
    assert not ours(sim)
    assert "next run: " in listing and "none" not in listing


def test_hung_pre_command_times_out_and_post_still_runs(tmp_path, sim):
    log = tmp_path / "hooks.log"
    hooks = (f'pre_command = "echo pre >> {log}; sleep 60"; '
             f'post_command = "echo post >> {log}"; hook_timeout = 1;')
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.clear_requests()
        ctl(d.sock, "snapshot", "web")
        # Bounded by hook_timeout, with generous slack.
        failed = wait_events(d, "snapshot_failed", 1, timeout=30)[0]
        # The daemon kept serving meanwhile.
        assert "pong" in ctl(d.sock, "ping").stdout
    assert log.read_text() == "pre\npost\n"
    assert "pre_command failed (timeout)" in field(failed, "reason")
    assert creates(sim) == []


def test_post_command_owed_by_a_stopped_daemon_runs_at_start(tmp_path, sim):
    log = tmp_path / "hooks.log"
    hooks = (f'pre_command = "echo pre >> {log}; sleep 30"; '
             f'post_command = "echo post >> {log}"; hook_timeout = 60;')
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.clear_requests()
        ctl(d.sock, "snapshot", "web")
        sim.wait(lambda: log.exists() and log.read_text() == "pre\n",
                 timeout=20, what="the pre_command")
    # Stopped while the pre_command (say, fsfreeze) was running.
    assert log.read_text() == "pre\n"
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"running the post_command it owes", timeout=20)
        sim.wait(lambda: log.read_text() == "pre\npost\n", timeout=20,
                 what="the owed post_command")
        d.drain(1.0)
        assert not events(d, "snapshot_failed")
    assert creates(sim) == []
    # Owed once: a third start does not run it again.
    with start(tmp_path, sim, snapshot=hooks) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        d.drain(1.0)
    assert log.read_text() == "pre\npost\n"


def test_schedule_set_by_a_reload_starts(tmp_path, sim):
    with start(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        d.drain(1.0)
        assert not events(d, "snapshot_taken")
        conftest.write_conf(str(tmp_path), sim,
                            **conftest.manual("interval = 3600;"))
        ctl(d.sock, "reload")
        taken = wait_events(d, "snapshot_taken", 2, timeout=20)
        sim.wait(lambda: json.loads(ctl(d.sock, "snapshots", "web",
                                        "--json").stdout)["last_ok"] > 0,
                 timeout=20, what="the run to finish")
    assert {field(t, "trigger") for t in taken} == {"schedule"}
