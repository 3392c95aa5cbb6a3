"""Preflight end to end: failoverd against ec2sim.

What a person relies on: at start and on `failoverctl preflight`, every
call a failover makes is tried with DryRun and the real parameters and
the reads check the EIP, the volumes, the AMI and the subnet's AZ; a
deny policy shows up as DENIED on exactly the denied actions with AWS's
message and a crit preflight_failed naming them; nothing in EC2 changes."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from conftest import events, field, start_manual  # noqa: E402
from conftest import preflight_result as result  # noqa: E402
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402

# Every mutating action a failover, a snapshot or a bake makes.
MUTATING = {"RunInstances", "StopInstances", "DetachVolume",
            "AttachVolume", "AssociateAddress", "CreateSnapshot",
            "CreateTags", "CreateImage"}


def by_result(report, res):
    return [c for c in report["checks"] if c["result"] == res]


def snapshot_of_world(sim):
    st = sim.state()
    return {
        "instances": {i: (v["state"], v["image"], sorted(v["volumes"].items()))
                      for i, v in st["instances"].items()},
        "snapshots": sorted(st["snapshots"]),
        "images": sorted(st["images"]),
        "addresses": {a: v["instance"] for a, v in st["addresses"].items()},
    }


def test_preflight_at_start_passes_and_changes_nothing(tmp_path, sim):
    before = snapshot_of_world(sim)
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        r = result(d)
    assert r["ok"] is True, json.dumps(r, indent=1)
    actions = {c["action"] for c in r["checks"]}
    assert MUTATING <= actions
    assert not by_result(r, "DENIED") and not by_result(r, "INVALID")
    # Each dry run really went out as a dry run, with real parameters.
    for a in MUTATING:
        reqs = sim.requests(action=a)
        assert reqs, a
        for q in reqs:
            assert q["params"].get("DryRun") in ("true", True), q
            assert q["code"] == "DryRunOperation" or (
                a == "AttachVolume" and
                q["code"] in ("IncorrectState", "VolumeInUse")), q
    run = sim.requests(action="RunInstances")[0]["params"]
    assert run["ImageId"] == BASIC["image"]
    assert run["SubnetId"] == BASIC["subnets"]["us-east-1a"]
    assert run["Placement.AvailabilityZone"] == BASIC["az"]
    stop = sim.requests(action="StopInstances")[0]["params"]
    assert stop["InstanceId.1"] == BASIC["instance"]
    assert snapshot_of_world(sim) == before


def test_deny_policy_names_exactly_the_denied_actions(tmp_path, sim):
    denied = {"StopInstances", "CreateImage", "AttachVolume"}
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        sim.set_policy({"deny": sorted(denied)})
        before = snapshot_of_world(sim)
        out = ctl(d.sock, "preflight", "web").stdout
        assert "started" in out
        alert = d.wait_for(r"event=preflight_failed service=web",
                           timeout=30)
        r = result(d)
        text = ctl(d.sock, "preflight", "web", "--result").stdout
    assert r["ok"] is False
    got = {c["action"] for c in by_result(r, "DENIED")}
    assert got == denied, json.dumps(r, indent=1)
    assert not by_result(r, "INVALID"), json.dumps(r, indent=1)
    for c in by_result(r, "DENIED"):
        assert "not authorized" in c["detail"], c
    assert set(field(alert, "denied").split(",")) == denied
    for a in denied:
        assert f"DENIED  {a}" in text, text
    assert "A FAILOVER WOULD NOT WORK" in text
    assert snapshot_of_world(sim) == before


def test_preflight_failing_at_start_is_a_loud_alert(tmp_path, sim):
    sim.set_policy({"deny": ["RunInstances"]})
    with start_manual(tmp_path, sim) as d:
        alert = d.wait_for(r"event=preflight_failed service=web",
                           timeout=30)
        r = result(d)
    assert field(alert, "denied") == "RunInstances"
    assert {c["action"] for c in by_result(r, "DENIED")} == \
        {"RunInstances"}


def test_subnet_in_another_az_is_invalid(tmp_path, sim):
    other = BASIC["subnets"]["us-east-1b"]
    edits = [(BASIC["subnets"]["us-east-1a"], other)]
    with start_manual(tmp_path, sim, edits=edits) as d:
        d.wait_for(r"event=preflight_failed service=web", timeout=30)
        r = result(d)
    bad = {c["check"]: c for c in by_result(r, "INVALID")}
    assert f"subnet {other}" in bad, json.dumps(r, indent=1)
    assert "us-east-1b" in bad[f"subnet {other}"]["detail"]
    assert f"RunInstances {BASIC['image']}" in bad


def test_missing_volume_and_image_are_invalid(tmp_path, sim):
    edits = [(BASIC["volumes"]["/dev/sdg"], "vol-0fffffffffffffff9"),
             (f'ami = "{BASIC["image"]}"', 'ami = "ami-0fffffffffffffff9"')]
    with start_manual(tmp_path, sim, edits=edits) as d:
        d.wait_for(r"event=preflight_failed service=web", timeout=30)
        r = result(d)
    bad = {c["check"] for c in by_result(r, "INVALID")}
    assert "image ami-0fffffffffffffff9" in bad, json.dumps(r, indent=1)
    assert any(c.startswith("volume vol-0fffffffffffffff9") for c in bad)
    assert not by_result(r, "DENIED")


def test_no_instance_profile_is_not_configured_not_a_failure(tmp_path, sim):
    # iam_instance_profile is optional (RunInstances launches without
    # one): left out, preflight says so and passes.
    edits = [(f'iam_instance_profile = "{BASIC["instance_profile"]}";', "")]
    with start_manual(tmp_path, sim, edits=edits) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        r = result(d)
        text = ctl(d.sock, "preflight", "web", "--result").stdout
        assert not events(d, "preflight_failed")
    assert r["ok"] is True, json.dumps(r, indent=1)
    prof = [c for c in r["checks"] if c["check"] == "instance profile"]
    assert len(prof) == 1 and prof[0]["result"] == "OK", prof
    assert "not configured" in prof[0]["detail"]
    assert "not configured" in text
    run = sim.requests(action="RunInstances")[0]["params"]
    assert not [k for k in run if k.startswith("IamInstanceProfile")]


def test_more_services_than_preflights_at_once_each_get_theirs(
        tmp_path, sim):
    """A daemon runs only a few preflights at once and the others wait
    their turn: with more services than that, every service's preflight
    at start still runs to its end, once. The extra services name an
    address that does not exist, so theirs fail."""
    more = [f"more{i}" for i in range(1, 8)]
    extra = "".join(f"""
  {{
    name = "{name}";
    eip_allocation_id = "eipalloc-{i:017x}";
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro"; }};
    probes = (
      {{ name = "site"; type = "http"; port = {sim.http_port};
         path = "/health"; interval = 1.0; timeout = 0.8; }}
    );
    policy = {{ auto_failover = false; }};
  }},""" for i, name in enumerate(more, 1))
    edits = [("services = (\n", "services = (" + extra + "\n")]
    with start_manual(tmp_path, sim, edits=edits) as d:
        deadline = time.monotonic() + 90
        while True:
            ends = events(d, "preflight_passed") + \
                events(d, "preflight_failed")
            if len(ends) >= len(more) + 1:
                break
            assert time.monotonic() < deadline, "\n".join(d.lines)
            d.drain(0.2)
        d.drain(1.0)
        passed = [field(e, "service")
                  for e in events(d, "preflight_passed")]
        failed = [field(e, "service")
                  for e in events(d, "preflight_failed")]
    assert passed == ["web"], (passed, failed)
    assert sorted(failed) == sorted(more), (passed, failed)
