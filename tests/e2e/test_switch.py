"""Release switch and rollback end to end: failoverd against ec2sim.

`failoverctl switch SERVICE --ami AMI` launches the new release, checks
it with the service's own probes on its private address before touching
production, then moves volumes and EIP to it and keeps the old instance
stopped; a failed move rolls back by itself; `rollback` moves back on
demand and `switch --finish` retires the kept instance. Each test checks
ec2sim's final state and the events a person reads."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import (EIP, OLD, VOLS, calls, curl_health,  # noqa: E402
                      events, field, healthy, start)
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402

NEW_AMI = "ami-0bbbbbbbbbbbbbbb2"
POLICY = {"verify_timeout": 8}


def release(sim, faults=()):
    """A second AMI, prod-web-v2, whose instances get faults."""
    sim.image(NEW_AMI, copy_of=BASIC["image"], name="prod-web-v2",
              faults=list(faults))
    return NEW_AMI


def evnames(d, start=0):
    return [e for e, _ in events(d, start=start)]


def status(d):
    return json.loads(ctl(d.sock, "status", "--json").stdout)["services"][0]


def launched(sim):
    st = sim.state()
    new = [i for i in st["instances"].values() if i["id"] != OLD]
    assert len(new) == 1, json.dumps(st["instances"], indent=1)
    return new[0]


def assert_production(sim, iid):
    """iid runs with every data volume at its device and the EIP."""
    st = sim.state()
    inst = st["instances"][iid]
    assert inst["state"] == "running"
    for dev, vid in VOLS.items():
        assert inst["volumes"].get(dev) == vid, inst["volumes"]
    assert st["addresses"][EIP]["instance"] == iid
    assert curl_health(sim)["instance_id"] == iid


def test_image_faults_reach_the_instances_launched_from_it(tmp_path, sim):
    """ec2sim: an AMI's faults (a bad release) go to its instances."""
    release(sim, ["http_down_with_data"])
    assert sim.image(NEW_AMI)["faults"] == ["http_down_with_data"]
    assert sim.image(BASIC["image"])["faults"] == []


def test_switch_checks_privately_then_moves_and_finish_retires(
        tmp_path, sim):
    ami = release(sim)
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        before = curl_health(sim)
        # Without --yes and without a terminal, nothing happens.
        p = ctl(d.sock, "switch", "web", "--ami", ami, check=False)
        assert p.returncode == 1 and "--yes" in p.stderr
        out = ctl(d.sock, "--yes", "switch", "web", "--ami", ami).stdout
        assert "private address" in out
        line = d.wait_for(r"event=switch_completed", timeout=60)
        new = launched(sim)
        assert new["image"] == ami and new["az"] == BASIC["az"]
        assert_production(sim, new["id"])
        assert sim.instance(OLD)["state"] == "stopped"
        assert field(line, "kept_instance") == OLD
        assert curl_health(sim)["volumes"] == before["volumes"]
        # The check on the private address came before the fence.
        lines = d.lines
        checked = next(i for i, x in enumerate(lines)
                       if "passed the service's probes on " +
                       new["ip"] in x)
        fenced = next(i for i, x in enumerate(lines)
                      if f"{OLD} fenced" in x)
        assert checked < fenced
        assert [e for e in evnames(d) if e.startswith("switch_")] == \
            ["switch_started", "switch_completed"]
        assert "failover_started" not in evnames(d)
        svc = status(d)
        assert svc["kept_instance"] == OLD and svc["instance"] == new["id"]
        assert svc["verdict"] == "healthy"
        h = json.loads(ctl(d.sock, "history", "--json").stdout)
        assert h["failovers"][-1]["kind"] == "switch"
        assert h["failovers"][-1]["result"] == "completed"
        # A second switch waits until the kept one is dealt with.
        p = ctl(d.sock, "--yes", "switch", "web", "--ami", ami,
                check=False)
        assert p.returncode == 1 and "--finish" in p.stderr
        ctl(d.sock, "--yes", "switch", "web", "--finish")
        d.wait_for(r"event=switch_finished .*terminated_instance=" + OLD)
        sim.wait(lambda: sim.instance(OLD)["state"] in
                 ("shutting-down", "terminated"), what="old terminated")
        assert status(d)["kept_instance"] is None
        assert_production(sim, new["id"])
        assert len(calls(sim, "RunInstances")) == 1


def test_switch_to_a_broken_release_never_touches_production(
        tmp_path, sim):
    ami = release(sim, ["http_down"])
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        prod = status(d)["target"]
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(r"service web: checking \S+ with the service's probes",
                   timeout=60)
        # The new instance is checked by a second set of probes while
        # the service's own probes keep watching production.
        svc = status(d)
        assert svc["check"]["target"] == launched(sim)["ip"]
        assert svc["target"] == prod and svc["verdict"] == "healthy"
        assert {p["name"] for p in svc["check"]["probes"]} == \
            {p["name"] for p in svc["probes"]}
        line = d.wait_for(r"event=switch_failed", timeout=60)
        assert "production untouched" in line
        assert "private address" in field(line, "reason")
        new = launched(sim)
        sim.wait(lambda: sim.instance(new["id"])["state"] in
                 ("shutting-down", "terminated"), what="new terminated")
        assert calls(sim, "StopInstances") == []
        assert calls(sim, "DetachVolume") == []
        assert calls(sim, "AssociateAddress") == []
        assert_production(sim, OLD)
        # Production was watched all along and never left healthy.
        svc = status(d)
        assert svc["step"] == "idle" and svc["kept_instance"] is None
        assert svc["verdict"] == "healthy" and "check" not in svc
        assert svc["target"] == prod
        assert "service_down" not in evnames(d)
        assert all(p["checks"] > 0 for p in svc["probes"])


def test_production_failing_during_the_private_check_is_failed_over(
        tmp_path, sim):
    ami = release(sim, ["http_down"])
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(r"service web: checking \S+ with the service's probes",
                   timeout=60)
        sim.instance_fault(OLD, "both")
        # Production's own probes see it, during the switch.
        down = d.wait_for(r"event=service_down ", timeout=30)
        failed = d.wait_for(r"event=switch_failed", timeout=60)
        assert d.lines.index(down) < d.lines.index(failed)
        # Once the switch is out of the way, production is replaced
        # from the configured AMI, not from the broken release.
        d.wait_for(r"event=failover_completed", timeout=90)
        st = sim.state()
        running = [i for i in st["instances"].values()
                   if i["id"] != OLD and i["state"] == "running"]
        assert len(running) == 1
        assert running[0]["image"] == BASIC["image"]
        assert_production(sim, running[0]["id"])


def test_switch_failing_verify_rolls_back_by_itself(tmp_path, sim):
    # Healthy alone, broken once it sees the production data.
    ami = release(sim, ["http_down_with_data"])
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        line = d.wait_for(r"event=switch_failed", timeout=60)
        assert "rolling back" in line
        d.wait_for(r"event=rollback_started .*trigger=\"failed switch\"",
                   timeout=10)
        done = d.wait_for(r"event=switch_rolled_back", timeout=60)
        new = launched(sim)
        assert field(done, "instance") == OLD
        assert field(done, "stopped_instance") == new["id"]
        assert_production(sim, OLD)
        assert sim.instance(new["id"])["state"] == "stopped"
        svc = status(d)
        assert svc["step"] == "done" and svc["kept_instance"] is None
        hist = json.loads(ctl(d.sock, "history", "--json").stdout)
        assert [(h["kind"], h["result"]) for h in hist["failovers"]] == \
            [("switch", "rolled_back"), ("rollback", "completed")]


def test_manual_rollback_moves_back_to_the_kept_instance(tmp_path, sim):
    ami = release(sim)
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        p = ctl(d.sock, "--yes", "rollback", "web", check=False)
        assert p.returncode == 1 and "no instance kept" in p.stderr
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(r"event=switch_completed", timeout=60)
        new = launched(sim)
        n = len(d.lines)
        ctl(d.sock, "--yes", "rollback", "web")
        line = d.wait_for(r"event=rollback_completed", timeout=60, start=n)
        assert field(line, "instance") == OLD
        assert_production(sim, OLD)
        assert sim.instance(new["id"])["state"] == "stopped"
        assert status(d)["kept_instance"] is None
        assert "switch_rolled_back" not in evnames(d)


@pytest.mark.parametrize("point", ["private", "detach"])
def test_kill_9_during_a_switch_then_restart_ends_the_same(
        tmp_path, sim, point):
    ami = release(sim)
    pattern = {"private": r"checking i-\S+ on its private address",
               "detach": r"\] -> \[detach\]"}[point]
    d = start(tmp_path, sim, policy=POLICY)
    try:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(pattern, timeout=60)
        d.proc.kill()
        d.stop(check=False)
    finally:
        if d.proc.poll() is None:
            d.stop(check=False)
    with start(tmp_path, sim, policy=POLICY) as d2:
        d2.wait_for(r"resuming failover", timeout=10)
        d2.wait_for(r"event=switch_completed", timeout=60)
        new = launched(sim)
        assert new["image"] == ami
        assert_production(sim, new["id"])
        assert sim.instance(OLD)["state"] == "stopped"
        assert status(d2)["kept_instance"] == OLD
        tokens = {r["params"]["ClientToken"]
                  for r in calls(sim, "RunInstances")}
        assert len(tokens) == 1


def test_switch_without_capacity_fails_and_leaves_production(tmp_path, sim):
    ami = release(sim)
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        sim.fault(kind="error", action="RunInstances",
                  code="InsufficientInstanceCapacity", status=400,
                  message="We currently do not have sufficient t3.micro "
                  "capacity in the Availability Zone you requested.",
                  count=None)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        line = d.wait_for(r"event=switch_failed", timeout=60)
        assert "production untouched" in line
        assert "InsufficientInstanceCapacity" in field(line, "reason")
        assert calls(sim, "StopInstances") == []
        assert calls(sim, "StartInstances") == []
        assert_production(sim, OLD)
        assert status(d)["step"] == "idle"


def test_kill_9_during_the_automatic_rollback_then_restart_ends_back(
        tmp_path, sim):
    ami = release(sim, ["http_down_with_data"])
    d = start(tmp_path, sim, policy=POLICY)
    try:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(r"event=rollback_started", timeout=60)
        d.proc.kill()
        d.stop(check=False)
    finally:
        if d.proc.poll() is None:
            d.stop(check=False)
    with start(tmp_path, sim, policy=POLICY) as d2:
        d2.wait_for(r"resuming failover", timeout=10)
        d2.wait_for(r"event=switch_rolled_back", timeout=60)
        new = launched(sim)
        assert_production(sim, OLD)
        assert sim.instance(new["id"])["state"] == "stopped"
        assert status(d2)["kept_instance"] is None


# Calls that change something in EC2: a held service makes none.
MOVES = ("RunInstances", "StartInstances", "StopInstances",
         "TerminateInstances", "DetachVolume", "AttachVolume",
         "AssociateAddress", "DisassociateAddress", "CreateVolume")
# A rollback that fails before its verify: a shorter wait for the
# switch's own verify to fail.
FAST = {"verify_timeout": 5}


def moves(sim):
    """action -> how many real (not DryRun) mutating calls ec2sim got."""
    n = {}
    for r in sim.requests():
        if r["action"] in MOVES and \
                str(r["params"].get("DryRun", "")).lower() != "true":
            n[r["action"]] = n.get(r["action"], 0) + 1
    return n


def test_rollback_that_cannot_start_the_kept_instance_holds_for_a_person(
        tmp_path, sim):
    """The automatic rollback of a failed switch starts the kept (stopped)
    instance again; with StartInstances denied it fails: a CRIT alert
    says what stands where, and nothing more happens by itself."""
    ami = release(sim, ["http_down_with_data"])
    # A switch never starts an instance: only its rollback needs this.
    sim.set_policy({"deny": ["StartInstances"]})
    with start(tmp_path, sim, policy=FAST) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        rb = d.wait_for(r"event=rollback_started .*trigger=\"failed "
                        r"switch\"", timeout=60)
        line = d.wait_for(r"event=rollback_failed", timeout=30)
        new = launched(sim)
        assert " crit: " in line
        assert field(line, "step") == "fence+launch"
        reason = field(line, "reason")
        assert "StartInstances" in reason
        assert "UnauthorizedOperation" in reason
        stands = field(line, "stands")
        assert OLD in stands and new["id"] in stands
        assert "EIP on " + new["id"] in stands
        for vid in VOLS.values():
            assert vid in stands
        assert "a person decides" in field(line, "action")
        # ec2sim as the alert says: the broken release fenced (stopped)
        # with the volumes and the EIP, the kept instance stopped.
        sim.wait(lambda: sim.instance(new["id"])["state"] == "stopped",
                 what="the new release stopped")
        st = sim.state()
        assert st["instances"][OLD]["state"] == "stopped"
        for dev, vid in VOLS.items():
            assert st["instances"][new["id"]]["volumes"].get(dev) == vid
        assert st["addresses"][EIP]["instance"] == new["id"]
        # The service is down, and stays held: no failover, no call.
        d.wait_for(r"event=service_down", timeout=10,
                   start=d.lines.index(rb))
        d.drain(4)
        after = evnames(d, d.lines.index(line) + 1)
        for ev in ("failover_started", "rollback_started",
                   "switch_started", "failover_step"):
            assert ev not in after
        # The switch: launch, fence, move; the rollback: its fence and
        # the one refused start, never retried.
        assert moves(sim) == {"RunInstances": 1, "StopInstances": 2,
                              "DetachVolume": 2, "AttachVolume": 2,
                              "AssociateAddress": 1, "StartInstances": 1}
        svc = status(d)
        assert svc["step"] == "failed" and svc["verdict"] == "down"
        assert field(line, "rollback_id") in svc["hold_reason"]
        assert "StartInstances" in svc["hold_reason"]
        hist = json.loads(ctl(d.sock, "history", "--json").stdout)
        assert [(h["kind"], h["result"]) for h in hist["failovers"]] == \
            [("switch", "rolled_back"), ("rollback", "failed")]


def test_after_a_failed_automatic_rollback_failoverctl_rollback_works(
        tmp_path, sim):
    ami = release(sim, ["http_down_with_data"])
    sim.set_policy({"deny": ["StartInstances"]})
    with start(tmp_path, sim, policy=POLICY) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        line = d.wait_for(r"event=rollback_failed", timeout=60)
        new = launched(sim)
        assert "failoverctl rollback" in field(line, "action")
        # A person allows StartInstances and follows the advice.
        sim.set_policy({"deny": []})
        n = len(d.lines)
        p = ctl(d.sock, "--yes", "rollback", "web", check=False)
        assert p.returncode == 0, p.stderr
        d.wait_for(r"event=rollback_completed", timeout=60, start=n)
        assert_production(sim, OLD)
        assert sim.instance(new["id"])["state"] == "stopped"
        assert status(d)["kept_instance"] is None


def test_rollback_that_cannot_attach_leaves_no_instance_without_its_data(
        tmp_path, sim):
    ami = release(sim, ["http_down_with_data"])
    with start(tmp_path, sim, policy=FAST) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        # The switch attached the volumes already; its rollback may not.
        d.wait_for(r"step=verify from=associate kind=switch", timeout=60)
        sim.set_policy({"deny": ["AttachVolume"]})
        line = d.wait_for(r"event=rollback_failed", timeout=60)
        new = launched(sim)
        assert " crit: " in line and field(line, "step") == "attach"
        assert "AttachVolume" in field(line, "reason")
        assert sim.address(EIP)["instance"] == new["id"]
        for vid in VOLS.values():
            assert sim.volume(vid)["attachment"] is None
        # Volumes attached nowhere: no instance may run beside them.
        sim.wait(lambda: sim.instance(OLD)["state"] in
                 ("stopping", "stopped"), timeout=30,
                 what="the kept instance, idle, stopped again")
        assert sim.instance(new["id"])["state"] == "stopped"
        # And the alert says where they are: attached nowhere.
        stands = field(line, "stands")
        for vid in VOLS.values():
            assert vid + " available" in stands
        assert status(d)["step"] == "failed"
