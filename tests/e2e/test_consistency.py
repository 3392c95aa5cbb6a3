"""Eventual consistency (issue 12, behaviour 9).

"Eventual consistency in the Amazon EC2 API": the result of a command
may not be visible to the commands that follow it at once; a resource
just created may be reported as not existing (InvalidInstanceID.NotFound
right after RunInstances).  ec2sim models it by default: after every
mutation, Describe* shows each resource it changed as it was before,
for describe_lag seconds (random per mutation), while the mutations
themselves, the instances' network and the test's own eye (sim.state(),
sim.instance() ...) see the real state.

failoverd must not act on a stale view: a failover moves each thing once
however late EC2 shows it, the identity refresh after a move does not
take the old instance back as production (nor its host keys), and a
failover resumed after a crash neither launches twice nor fails because
EC2 still shows a volume as it was before its own AttachVolume.
"""
import json
import os
import signal
import sys

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from fodtest import ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim, Ec2SimError  # noqa: E402
import conftest  # noqa: E402
from conftest import (EIP, OLD, VOLS, assert_replaced,  # noqa: E402
                      calls, events, healthy, replacement)


def client(sim):
    return botocore.session.get_session().create_client(
        "ec2", region_name=sim.region, endpoint_url=sim.endpoint,
        aws_access_key_id=sim.access_key,
        aws_secret_access_key=sim.secret_key, verify=sim.ca_file or True,
        config=Config(retries={"total_max_attempts": 1}))


def code(fn, **kw):
    """The error code of a call expected to fail, or None."""
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def wait_taken(sim, action):
    """Until the one-shot fault on action has been taken: the request
    is inside ec2sim, waiting out its latency."""
    sim.wait(lambda: not any(f["action"] == action
                             for f in sim.faults()),
             timeout=60, what=f"{action} to reach ec2sim")


def test_describe_shows_the_state_before_each_mutation(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim",
                delays={"describe_lag": 3}) as sim:
        ec2 = client(sim)
        # A just-launched instance: the test sees it, Describe not yet
        # (by id: InvalidInstanceID.NotFound; by filter: nothing).
        run = ec2.run_instances(
            ImageId=BASIC["image"], MinCount=1, MaxCount=1,
            InstanceType="t3.micro", ClientToken="consistency-1",
            SubnetId=BASIC["subnets"]["us-east-1a"])
        new = run["Instances"][0]["InstanceId"]
        assert sim.instance(new)["id"] == new
        assert code(ec2.describe_instances,
                    InstanceIds=[new]) == "InvalidInstanceID.NotFound"
        r = ec2.describe_instances(Filters=[
            {"Name": "client-token", "Values": ["consistency-1"]}])
        assert r["Reservations"] == []
        # The same token again works on the real state: the same one.
        again = ec2.run_instances(
            ImageId=BASIC["image"], MinCount=1, MaxCount=1,
            InstanceType="t3.micro", ClientToken="consistency-1",
            SubnetId=BASIC["subnets"]["us-east-1a"])
        assert again["Instances"][0]["InstanceId"] == new

        # A stop: Describe still says running while it really stops.
        ec2.stop_instances(InstanceIds=[OLD], Force=True)
        shown = ec2.describe_instances(InstanceIds=[OLD])
        assert shown["Reservations"][0]["Instances"][0]["State"][
            "Name"] == "running"
        sim.wait_instance_state(OLD, "stopped", timeout=30)

        # A detach: Describe still shows the attachment, yet a
        # mutation acts on the real state: the volume attaches to the
        # new instance as soon as it is really free.
        vol = VOLS["/dev/sdf"]
        ec2.detach_volume(VolumeId=vol)
        sim.wait(lambda: sim.volume(vol)["state"] == "available",
                 timeout=30, what="detached")
        sim.wait_instance_state(new, "running", timeout=30)
        v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
        assert v["Attachments"][0]["InstanceId"] == OLD
        ec2.attach_volume(VolumeId=vol, InstanceId=new, Device="/dev/sdf")
        # ... and Describe shows the state before the attach.
        v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
        assert v["State"] in ("in-use", "available")
        assert [a["InstanceId"] for a in v["Attachments"]] in ([OLD], [])

        # An association: Describe shows the old one for the lag.
        ec2.associate_address(AllocationId=EIP, InstanceId=new,
                              AllowReassociation=True)
        assert sim.address(EIP)["instance"] == new
        a = ec2.describe_addresses(AllocationIds=[EIP])["Addresses"][0]
        assert a["InstanceId"] == OLD

        # Eventually every Describe shows the real state.
        def visible():
            a = ec2.describe_addresses(AllocationIds=[EIP])["Addresses"]
            v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
            i = ec2.describe_instances(InstanceIds=[OLD])
            return (a[0].get("InstanceId") == new
                    and v["Attachments"][0]["InstanceId"] == new
                    and i["Reservations"][0]["Instances"][0]["State"][
                        "Name"] == "stopped")
        sim.wait(visible, timeout=30, interval=0.2, what="consistent")
        r = ec2.describe_instances(InstanceIds=[new])
        assert r["Reservations"][0]["Instances"][0]["InstanceId"] == new

        # The lag is a delay: a number or a [lo, hi] range.
        assert sim.set_delays(describe_lag=[0.2, 2.0])[
            "describe_lag"] == [0.2, 2.0]
        with pytest.raises(Ec2SimError):
            sim.set_delays(describe_lag=[2.0, 0.2])


def test_default_lag_is_on(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        lo, hi = sim.state()["delays"]["describe_lag"]
        assert 0 < lo < hi


def start(tmp_path, sim):
    """failoverd as test_failover starts it, with room for the lag in
    each step's deadline, and an ssh probe that a busy machine does not
    time out (these tests are about what EC2 shows, not probe speed)."""
    return conftest.start(tmp_path, sim, policy={
        "fence_timeout": 40, "launch_timeout": 60, "attach_timeout": 60,
        "associate_timeout": 30, "verify_timeout": 60},
        shell={"interval": 1.5, "timeout": 1.4})


def test_failover_under_lag_moves_each_thing_once_and_keeps_it(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim",
                delays={"describe_lag": 3}) as sim:
        d = start(tmp_path, sim)
        try:
            healthy(d, timeout=60)
            # The association's own lag covers the restart below.
            sim.fault(kind="latency", action="AssociateAddress",
                      latency=1, count=1)
            sim.instance_fault(OLD, "both")
            wait_taken(sim, "AssociateAddress")
            sim.set_delays(describe_lag=30)
            d.wait_for(r"event=failover_completed", timeout=120)
        finally:
            d.stop()
        assert_replaced(sim)
        new = replacement(sim)[0]["id"]
        assert len(calls(sim, "RunInstances")) == 1
        attaches = calls(sim, "AttachVolume")
        assert sorted(a["params"]["VolumeId"] for a in attaches) == \
            sorted(VOLS.values())
        assert len(calls(sim, "AssociateAddress")) == 1
        assert len(calls(sim, "StopInstances")) == 1

        # Restarted at once: EC2 still shows the EIP on the old
        # instance, and it is not production again.
        seen = sim.requests("DescribeAddresses")[-1]["seq"]
        d = start(tmp_path, sim)
        try:
            d.wait_for(r"service web: production instance is", timeout=20)
            # The ssh probe checks the EIP's host key: against the old
            # instance's keys (re-learnt from a stale view) it could not.
            d.wait_for(r"probe web/shell: check ok", timeout=60)
            d.drain(4)
            st = json.loads(ctl(d.sock, "status", "--json").stdout)
        finally:
            d.stop()
        for ev, line in events(d):
            assert ev != "hostkey_mismatch", line
            assert OLD not in line, line
        assert st["services"][0]["instance"] == new
        assert not [r for r in calls(sim, "GetConsoleOutput")
                    if r["seq"] > seen
                    and r["params"].get("InstanceId") == OLD]
        # It did meet the stale view (else this proves nothing).
        assert sim.address(EIP)["instance"] == new
        assert any("EC2 still shows the Elastic IP on " + OLD in line
                   for line in d.lines)


def test_resume_after_a_lost_runinstances_reply_launches_once(tmp_path):
    """SIGKILL while RunInstances is in ec2sim: it launches, the reply
    is lost. The resumed failover looks the launch up by its client
    token while EC2 does not show it yet, and launches again with the
    same token: EC2's idempotency gives back the same instance."""
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        d = start(tmp_path, sim)
        try:
            healthy(d, timeout=60)
            sim.fault(kind="latency", action="RunInstances", latency=2,
                      count=1)
            sim.instance_fault(OLD, "both")
            wait_taken(sim, "RunInstances")
            sim.set_delays(describe_lag=6)
            d.signal(signal.SIGKILL)
        finally:
            d.stop(check=False)
        sim.wait(lambda: calls(sim, "RunInstances"), timeout=30,
                 what="the launch carried out")
        assert len(replacement(sim)) == 1
        d = start(tmp_path, sim)
        try:
            d.wait_for(r"resuming failover", timeout=15)
            d.wait_for(r"event=failover_completed", timeout=120)
        finally:
            d.stop()
        assert_replaced(sim)
        runs = calls(sim, "RunInstances")
        tokens = {r["params"]["ClientToken"] for r in runs}
        assert len(tokens) == 1, runs
        # The lookup saw nothing (the lag), so it launched again.
        assert len(runs) == 2, [r["status"] for r in runs]


def test_resume_in_attach_under_lag_does_not_fail(tmp_path):
    """SIGKILL while an AttachVolume is in ec2sim: the volume attaches,
    the reply is lost. The resumed failover sees the volume 'available'
    (the view from before the attach); its AttachVolume is refused
    (VolumeInUse), which means "look again", not a failed failover."""
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        d = start(tmp_path, sim)
        try:
            healthy(d, timeout=60)
            sim.fault(kind="latency", action="AttachVolume", latency=2,
                      count=1)
            sim.instance_fault(OLD, "both")
            wait_taken(sim, "AttachVolume")
            sim.set_delays(describe_lag=6)
            d.signal(signal.SIGKILL)
        finally:
            d.stop(check=False)
        sim.wait(lambda: len(calls(sim, "AttachVolume")) == 2,
                 timeout=30, what="both attaches carried out")
        d = start(tmp_path, sim)
        try:
            d.wait_for(r"resuming failover", timeout=15)
            d.wait_for(r"event=failover_(completed|failed)", timeout=120)
        finally:
            d.stop()
        assert not [line for ev, line in events(d)
                    if ev == "failover_failed"], "\n".join(d.lines)
        assert_replaced(sim)
        refused = [r for r in calls(sim, "AttachVolume")
                   if r["code"] != "OK"]
        assert refused and {r["code"] for r in refused} <= {
            "VolumeInUse", "IncorrectState"}, refused
