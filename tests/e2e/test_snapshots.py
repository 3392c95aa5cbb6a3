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

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from fodtest import Daemon, ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

VOLS = BASIC["volumes"]          # device -> volume id
EIP = BASIC["eip"]
SCENARIO_SNAPS = set(BASIC["snapshots"].values())


def write_conf(d, sim, snapshot="", name="web", probe_address=None,
               edits=()):
    """failoverd.conf for the basic scenario; snapshot is the body of
    the service's snapshot group; edits are (old, new) replacements."""
    addr = f'address = "{probe_address}";' if probe_address else ""
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    path = os.path.join(d, "failoverd.conf")
    text = f"""state_dir = "{d}/state";
control_socket = "{d}/control.sock";
debug = true;
aws = {{ calls_per_second = 100; burst = 100; call_timeout = 10; }};
alerts = {{ rate_limit = 0; }};
services = (
  {{
    name = "{name}";
    eip_allocation_id = "{EIP}";
    volumes = (
      {{ id = "{VOLS['/dev/sdf']}"; device = "/dev/sdf"; }},
      {{ id = "{VOLS['/dev/sdg']}"; device = "/dev/sdg"; }}
    );
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}";
               security_groups = [ "{BASIC['security_group']}" ];
               key_name = "{BASIC['key_name']}";
               iam_instance_profile = "{BASIC['instance_profile']}"; }};
    probes = (
      {{ name = "site"; type = "http"; port = {sim.http_port};
         path = "/health"; interval = 1.0; timeout = 0.8; }},
      {{ name = "shell"; type = "ssh"; port = {sim.ssh_port};
         user = "{sim.ssh_user}"; key_file = "{sim.ssh_key}";
         known_hosts = "{sim.known_hosts}"; {addr}
         interval = 1.0; timeout = 0.8; }}
    );
    policy = {{ auto_failover = false; }};
    snapshot = {{ {snapshot} }};
  }}
);
"""
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    return path


def start(tmp_path, sim, **kw):
    conf = write_conf(str(tmp_path), sim, **kw)
    e = dict(sim.env())
    # failoverd refuses world-writable credential files (/dev/null).
    e["AWS_CONFIG_FILE"] = os.path.join(str(tmp_path), "no-aws-config")
    e["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(str(tmp_path),
                                                   "no-aws-credentials")
    d = Daemon(conf, env=e)
    d.sock = os.path.join(str(tmp_path), "control.sock")
    return d


def events(daemon, name, start=0):
    return [line for line in daemon.lines[start:]
            if f"event={name} " in line or line.endswith(f"event={name}")]


def field(line, key):
    """Value of key=value in an event line (quoted or not)."""
    part = line.split(f" {key}=", 1)[1]
    if part.startswith('"'):
        return part[1:].split('"', 1)[0]
    return part.split()[0]


def wait_events(daemon, name, count, timeout=20):
    deadline = time.monotonic() + timeout
    while len(events(daemon, name)) < count:
        if time.monotonic() > deadline:
            raise AssertionError("%d x %s not seen; log:\n%s" % (
                count, name, "\n".join(daemon.lines)))
        daemon.drain(0.1)
    return events(daemon, name)


def ours(sim):
    # Another account's public snapshots may carry the same tags.
    return {sid: s for sid, s in sim.state()["snapshots"].items()
            if s["tags"].get("failoverd:taken-by") == "failoverd"
            and s["owner"] == BASIC["account"]}


def creates(sim):
    """CreateSnapshot calls that were not preflight's dry runs."""
    return [r for r in sim.requests(action="CreateSnapshot")
            if r["params"].get("DryRun") not in ("true", True)]


def write_journal(path, fields, seq=1):
    """A journal file as journal.c writes it (see journal.h)."""
    body = "failoverd-journal 1\nseq=%d\n" % seq
    for k, v in fields.items():
        body += "%s=%s\n" % (k, v)
    digest = hashlib.sha256(body.encode()).hexdigest()
    with open(path, "w") as f:
        f.write(body + "end sha256=%s\n" % digest)


@pytest.fixture
def sim(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as s:
        yield s


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
        write_conf(str(tmp_path), sim, snapshot="interval = 3600;")
        ctl(d.sock, "reload")
        taken = wait_events(d, "snapshot_taken", 2, timeout=20)
        sim.wait(lambda: json.loads(ctl(d.sock, "snapshots", "web",
                                        "--json").stdout)["last_ok"] > 0,
                 timeout=20, what="the run to finish")
    assert {field(t, "trigger") for t in taken} == {"schedule"}
