"""The failover engine end to end: failoverd against ec2sim, whose
instances run a real sshd and a real HTTP server on loopback and whose
Elastic IP forwards to the instance it is associated with.

Each test breaks the production instance (or not) and then checks what a
person relies on: ec2sim's final state (one replacement from the AMI in
the volumes' AZ, each volume attached to it at its device, the EIP on it,
the old one stopped) and the events in the log, in order."""
import json
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import (EIP, OLD, VOLS, assert_replaced, calls,  # noqa: E402
                      curl_health, events, field, healthy, replacement,
                      start, two_service_scenario)
from fodtest import ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

# Steps of a replacement, in the order the log must show them.
STEPS = ["fence+launch", "detach", "attach", "associate", "verify"]


def step_order(d, start=0):
    return [field(line, "step") for line in events(d, "failover_step", start)]


# --------------------------------------------------------------------------


def test_happy_path_replaces_the_instance_moves_volumes_and_eip(
        tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        before = curl_health(sim)
        assert before["instance_id"] == OLD
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed", timeout=60)
        d.wait_for(r"event=service_recovered", timeout=10)
        new = assert_replaced(sim)
        assert field(line, "new_instance") == new["id"]
        for k in ("detect", "fence", "launch", "detach", "attach",
                  "associate", "verify", "total", "critical_path"):
            float(field(line, k))
        assert float(field(line, "critical_path")) <= \
            float(field(line, "total")) + 0.001
        evs = [e for e, _ in events(d)]
        order = [e for e in evs if e in (
            "service_down", "failover_started", "failover_completed",
            "service_recovered")]
        # The service's own story ends: it is back, on the new instance.
        assert order == ["service_down", "failover_started",
                         "failover_completed", "service_recovered"]
        rec = [ln for e, ln in events(d) if e == "service_recovered"][0]
        assert field(rec, "instance") == new["id"]
        assert field(rec, "by") == "failover"
        assert field(rec, "failover_id") == field(line, "failover_id")
        assert step_order(d) == STEPS
        # The site answers from the replacement through the same EIP,
        # and the ssh probe trusts its new host key (learnt, not TOFU).
        after = curl_health(sim)
        assert after["instance_id"] == new["id"]
        assert after["volumes"] == before["volumes"]
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        svc = st["services"][0]
        assert svc["instance"] == new["id"] and svc["az"] == BASIC["az"]
        assert svc["verdict"] == "healthy" and svc["failover"] is None
        hist = json.loads(ctl(d.sock, "history", "--json").stdout)
        h = hist["failovers"][-1]
        assert h["result"] == "completed" and h["new"] == new["id"]
        assert h["old"] == OLD and h["timings"]["total"] > 0
        runs = calls(sim, "RunInstances")
        assert len(runs) == 1
        assert runs[0]["params"]["ClientToken"] == h["id"]


def no_failover(d, seconds):
    """Nothing was launched or stopped during seconds."""
    start = len(d.lines)
    d.drain(seconds)
    assert not [e for e, _ in events(d, start=start)
                if e.startswith("failover_") and e != "failover_held"]


def test_degraded_sshd_down_alerts_and_does_not_fail_over(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.instance_fault(OLD, "ssh_down")
        line = d.wait_for(r"event=service_degraded", timeout=15)
        assert "shell" in line
        no_failover(d, 3)
        assert calls(sim, "RunInstances") == []
        assert calls(sim, "StopInstances") == []
        assert sim.instance(OLD)["state"] == "running"


def test_manual_failover_is_confirmed_and_refused_while_one_runs(
        tmp_path, sim):
    with start(tmp_path, sim, policy={"auto_failover": False}) as d:
        healthy(d)
        # Without a terminal and without --yes, nothing happens.
        p = ctl(d.sock, "failover", "web", check=False)
        assert p.returncode == 1 and "--yes" in p.stderr
        p = ctl(d.sock, "--yes", "failover", "web")
        assert "started" in p.stdout
        # --yes after the command is failoverctl's too, as people type it.
        p = ctl(d.sock, "failover", "web", "--yes", check=False)
        assert p.returncode == 1 and "in progress" in p.stderr
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert st["services"][0]["failover"]["step"] in STEPS
        line = d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        cmd = d.wait_for(r"event=control_command .*command=failover")
        assert f"uid={os.getuid()}" in cmd
        assert "trigger=manual" in d.wait_for(r"event=failover_started")
        assert float(field(line, "detect")) == 0
        assert len(calls(sim, "RunInstances")) == 1


def test_pause_holds_and_resume_acts(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        assert "paused" in ctl(d.sock, "pause", "web").stdout
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert st["services"][0]["paused"] is True
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=service_down", timeout=15)
        d.wait_for(r"event=failover_held .*reason=paused")
        no_failover(d, 2)
        assert calls(sim, "RunInstances") == []
        ctl(d.sock, "resume", "web")
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)


def test_cooldown_holds_a_second_failover(tmp_path, sim):
    with start(tmp_path, sim, policy={"cooldown": 600}) as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=60)
        new = assert_replaced(sim)
        n = len(d.lines)
        sim.instance_fault(new["id"], "both")
        line = d.wait_for(r"event=failover_held", timeout=20, start=n)
        assert "cooldown" in line
        no_failover(d, 2)
        assert len(calls(sim, "RunInstances")) == 1
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert st["services"][0]["step"] == "held"
        assert sim.instance(new["id"])["state"] == "running"


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_during_a_step_then_restart_ends_the_same(
        tmp_path, sim, step):
    d = start(tmp_path, sim)
    try:
        healthy(d)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"\] -> \[%s\]" % step.replace("+", r"\+"),
                   timeout=60)
        d.proc.kill()
        d.stop(check=False)
    finally:
        if d.proc.poll() is None:
            d.stop(check=False)
    with start(tmp_path, sim) as d2:
        d2.wait_for(r"resuming failover", timeout=10)
        d2.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        # One launch per ClientToken: a resumed launch never makes two.
        tokens = {r["params"]["ClientToken"]
                  for r in calls(sim, "RunInstances")}
        assert len(tokens) == 1
        attaches = calls(sim, "AttachVolume")
        assert sorted(a["params"]["VolumeId"] for a in attaches) == \
            sorted(VOLS.values())


def test_throttling_and_503s_during_the_failover_still_complete(
        tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind="throttle", action="*", count=6)
        sim.fault(kind="error503", action="AttachVolume", count=2)
        sim.fault(kind="error503", action="RunInstances", count=1)
        sim.fault(kind="throttle", action="AssociateAddress", count=2)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        assert sim.faults() == []   # every injected fault was hit


def test_no_capacity_restarts_the_old_instance_in_place(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind="error", action="RunInstances",
                  code="InsufficientInstanceCapacity",
                  message="We currently do not have sufficient t3.micro "
                  "capacity in the Availability Zone you requested.",
                  count=None)
        sim.instance_fault(OLD, "both")
        # New hardware after the stop: the fault stays with the old host.
        sim.wait_instance_state(OLD, "stopped", timeout=30)
        sim.instance_fault(OLD, "none")
        line = d.wait_for(r"event=failover_completed", timeout=60)
        assert "mode=restart_in_place" in line
        d.wait_for(r"event=failover_step .*change=restart_in_place")
        st = sim.state()
        assert [i for i in st["instances"] if i != OLD] == []
        assert st["instances"][OLD]["state"] == "running"
        for dev, vid in VOLS.items():
            assert st["instances"][OLD]["volumes"].get(dev) == vid
        assert st["addresses"][EIP]["instance"] == OLD
        assert len(calls(sim, "StartInstances")) == 1


def test_verify_failing_is_failover_failed_and_leaves_things(
        tmp_path, sim):
    with start(tmp_path, sim, policy={"verify_timeout": 3}) as d:
        healthy(d)
        # The replacement boots but its services never come up in time.
        sim.set_delays(boot=120)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_failed", timeout=60)
        assert "crit" in line.split()[1]
        assert "step=verify" in line
        stands = field(line, "stands")
        new = replacement(sim)
        assert len(new) == 1
        new = new[0]
        assert new["id"] in stands and OLD in stands
        # Left as it stood: volumes and EIP on the replacement, old off.
        st = sim.state()
        assert st["addresses"][EIP]["instance"] == new["id"]
        assert st["instances"][OLD]["state"] == "stopped"
        for dev, vid in VOLS.items():
            assert st["instances"][new["id"]]["volumes"].get(dev) == vid
        no_failover(d, 2)
        s = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert s["services"][0]["step"] == "failed"
        assert "failed in verify" in s["services"][0]["hold_reason"]
        assert json.loads(ctl(d.sock, "history", "--json").stdout)[
            "failovers"][-1]["result"] == "failed"


def test_watchdog_isolated_does_not_fail_over(tmp_path):
    with Ec2Sim(two_service_scenario(tmp_path), tmp_path / "sim") as sim:
        api = f"""{{
    name = "api";
    eip_allocation_id = "eipalloc-0bbbbbbbbbbbbbbb1";
    volumes = ( {{ id = "vol-0dbbbbbbbbbbbbbb1"; device = "/dev/sdf"; }} );
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}"; }};
    probes = ( {{ name = "site"; type = "http"; port = {sim.http_port};
                 path = "/health"; interval = 0.5; timeout = 0.4;
                 fall = 2; rise = 2; }} );
    policy = {{ cooldown = 0; }};
  }}"""
        with start(tmp_path, sim, extra=[api]) as d:
            healthy(d, "web")
            healthy(d, "api")
            # This host loses its network: nothing answers any more,
            # while EC2 sees both instances healthy.
            sim.instance_fault(OLD, "blackhole")
            sim.instance_fault("i-0bbbbbbbbbbbbbbb1", "blackhole")
            line = d.wait_for(r"event=watchdog_isolated", timeout=20)
            assert "instance ok, system ok" in line
            no_failover(d, 3)
            assert calls(sim, "RunInstances") == []
            assert calls(sim, "StopInstances") == []
            st = sim.state()
            assert st["instances"][OLD]["state"] == "running"
            assert st["instances"]["i-0bbbbbbbbbbbbbbb1"]["state"] == \
                "running"


def test_monitoring_goes_on_while_ec2_is_unreachable(tmp_path, sim):
    # Every EC2 call is dropped from the start: no address, no instance.
    sim.fault(kind="drop", action="*", count=None)
    with start(tmp_path, sim) as d:
        line = d.wait_for(r"event=aws_error .*DescribeAddresses",
                          timeout=30)
        assert "retrying" in line
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert st["services"][0]["aws_ok"] is False
        assert st["services"][0]["instance"] is None
        p = ctl(d.sock, "--yes", "failover", "web", check=False)
        assert p.returncode == 1 and "cannot fail over" in p.stderr
        # EC2 comes back: the EIP is learnt and the probes follow it.
        sim.clear_faults()
        d.wait_for(r"EC2 answers again", timeout=30)
        healthy(d)
        assert d.proc.poll() is None


def test_corrupt_journal_holds_the_service_and_is_never_overwritten(
        tmp_path, sim):
    state = tmp_path / "state"
    state.mkdir()
    journal = state / "web.journal"
    journal.write_bytes(b"failoverd-journal 1\nseq=7\nstep=detach\n")
    with start(tmp_path, sim) as d:
        line = d.wait_for(r"event=journal_corrupt", timeout=10)
        assert "web.journal" in line
        healthy(d)
        st = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert st["services"][0]["step"] == "held"
        p = ctl(d.sock, "--yes", "failover", "web", check=False)
        assert p.returncode == 1 and "corrupt" in p.stderr
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=service_down", timeout=15)
        no_failover(d, 2)
        assert calls(sim, "RunInstances") == []
        assert journal.read_bytes() == \
            b"failoverd-journal 1\nseq=7\nstep=detach\n"
        p = ctl(d.sock, "resume", "web", check=False)
        assert p.returncode == 1 and "unreadable" in p.stderr
        # A person moves the file away and re-arms the service.
        journal.rename(state / "web.journal.broken")
        ctl(d.sock, "resume", "web")
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)


def test_a_slow_step_alerts_and_the_failover_goes_on(tmp_path, sim):
    with start(tmp_path, sim, policy={"fence_timeout": 5}) as d:
        healthy(d)
        # Stopping takes 3s: past half the fence's 5s deadline.
        sim.set_delays(stopping=3.0)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_step_slow", timeout=30)
        assert "step=fence+launch" in line
        assert float(field(line, "budget")) == 2.5
        assert float(field(line, "elapsed")) >= 2.5
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)


def test_kill_9_while_run_instances_is_in_flight_launches_once(
        tmp_path, sim):
    # The reply to RunInstances never reaches the journal: the restart
    # must find the instance by its ClientToken, never launch a second.
    d = start(tmp_path, sim)
    try:
        healthy(d)
        sim.fault(kind="latency", action="RunInstances", latency=1.5,
                  count=1)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"ec2: RunInstances attempt 1$", timeout=30)
        d.proc.kill()
    finally:
        d.stop(check=False)
    assert not any("failover web: launched" in x for x in d.lines)
    with start(tmp_path, sim) as d2:
        d2.wait_for(r"resuming failover", timeout=10)
        d2.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        tokens = {r["params"]["ClientToken"]
                  for r in calls(sim, "RunInstances")}
        assert len(tokens) == 1


# --- the fence: graceful stop, or SkipOsShutdown -------------------------


def fence_stops(sim):
    return [r["params"] for r in calls(sim, "StopInstances")
            if r["params"].get("InstanceId.1") == OLD]


def test_hung_os_default_fence_waits_for_the_graceful_stop(tmp_path, sim):
    # Force first asks the OS to shut down and powers off only after
    # EC2's timeout (graceful_stop): a hung OS costs that wait.
    graceful = sim.state()["delays"]["graceful_stop"]
    assert graceful > 0
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.instance_fault(OLD, "os_hung")
        line = d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        stops = fence_stops(sim)
        assert stops and all(p.get("Force") == "true" for p in stops)
        assert not [p for p in stops if "SkipOsShutdown" in p]
        # Stopped only once EC2 gave up on the OS shutdown.
        assert float(field(line, "fence")) >= graceful
        d.wait_for(r"fenced \(stopped, [0-9.]+s, graceful stop\)",
                   timeout=10, start=0)


def test_skip_os_shutdown_fence_does_not_wait_for_a_hung_os(tmp_path, sim):
    # A graceful attempt longer than fence_timeout (20 s) would fail the
    # failover: only SkipOsShutdown gets past it.
    sim.set_delays(graceful_stop=600)
    with start(tmp_path, sim, policy={"fence": "skip_os_shutdown"}) as d:
        healthy(d)
        sim.instance_fault(OLD, "os_hung")
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        stops = fence_stops(sim)
        assert stops
        for p in stops:
            assert p.get("Force") == "true"
            assert p.get("SkipOsShutdown") == "true"
        d.wait_for(r"fenced \(stopped, [0-9.]+s, OS shutdown skipped\)",
                   timeout=10, start=0)


def test_a_region_refusing_skip_os_shutdown_falls_back_to_graceful(
        tmp_path, sim):
    sim.refuse_members("StopInstances.SkipOsShutdown")
    with start(tmp_path, sim, policy={"fence": "skip_os_shutdown"}) as d:
        healthy(d)
        sim.instance_fault(OLD, "os_hung")
        d.wait_for(r"event=failover_completed", timeout=60)
        assert_replaced(sim)
        mine = [r for r in sim.requests("StopInstances")
                if r["params"].get("InstanceId.1") == OLD and
                r["params"].get("DryRun") != "true"]
        assert mine[0]["params"].get("SkipOsShutdown") == "true"
        assert mine[0]["code"] == "UnknownParameter"
        assert mine[-1]["code"] == "OK"
        assert "SkipOsShutdown" not in mine[-1]["params"]
        assert mine[-1]["params"].get("Force") == "true"
        line = d.wait_for(r"refused SkipOsShutdown", timeout=10, start=0)
        assert "graceful" in line
