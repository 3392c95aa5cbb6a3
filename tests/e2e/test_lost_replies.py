"""A reply lost after EC2 did the work, and EC2's server errors, end to
end: failoverd against ec2sim's drop_after / error500_after faults (the
action is carried out, then the connection is reset or the answer is a
500) and its InsufficientInstanceCapacity 500s.

What a person relies on: a lost CreateSnapshot reply leaves one snapshot
per volume, not two (CreateSnapshot has no ClientToken: failoverd looks
for its tags before making another); a lost CreateImage reply leaves one
image and the bake completes; a lost RunInstances reply during a
failover launches one instance (ClientToken); lost AttachVolume and
AssociateAddress replies do not stop the failover; no capacity for the
first launches is tried again by the engine and the failover completes.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import (OLD, VOLS, assert_replaced, calls,  # noqa: E402
                      creates, events, field, healthy, ours, start,
                      start_manual, wait_events)
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402


@pytest.mark.parametrize("kind", ["drop_after", "error500_after"])
def test_lost_create_snapshot_reply_leaves_one_snapshot(tmp_path, sim,
                                                        kind):
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_(passed|failed)", timeout=20)
        sim.fault(kind=kind, action="CreateSnapshot", count=1)
        ctl(d.sock, "snapshot", "web")
        taken = wait_events(d, "snapshot_taken", 2, timeout=60)
        d.wait_for(r"its reply was lost, but it was done", timeout=30)
        mine = ours(sim)
    # One per volume: the lost one was found, not made again.
    assert len(mine) == 2, mine
    assert {s["volume"] for s in mine.values()} == \
        set(VOLS.values())
    assert {field(t, "snapshot") for t in taken} == set(mine)
    assert not events(d, "snapshot_failed")
    assert sim.faults() == []
    assert len(creates(sim)) == 2


def test_lost_create_image_reply_leaves_one_image(tmp_path, sim):
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        sim.fault(kind="drop_after", action="CreateImage", count=1)
        ctl(d.sock, "bake", "web", "--use")
        done = d.wait_for(r"event=bake_completed service=web", timeout=60)
    image = field(done, "image")
    images = {i: im for i, im in sim.state()["images"].items()
              if i != BASIC["image"]}
    assert list(images) == [image]
    assert images[image]["state"] == "available"
    creates = [r for r in sim.requests(action="CreateImage")
               if str(r["params"].get("DryRun", "")).lower() != "true"]
    assert [r["code"] for r in creates] == ["dropped_after"]


def test_lost_run_instances_reply_launches_one_instance(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind="drop_after", action="RunInstances", count=1)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        assert_replaced(sim)     # exactly one replacement
        runs = calls(sim, "RunInstances")
        assert runs[0]["code"] == "dropped_after"
        assert len({r["params"]["ClientToken"] for r in runs}) == 1


@pytest.mark.parametrize("action", ["AttachVolume", "AssociateAddress"])
@pytest.mark.parametrize("kind", ["drop_after", "error500_after"])
def test_lost_attach_or_associate_reply_still_completes(tmp_path, sim,
                                                        action, kind):
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind=kind, action=action, count=1)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        assert_replaced(sim)
        assert sim.faults() == []
        assert not [ln for ln in d.lines if "event=failover_failed" in ln]


def test_no_capacity_500s_are_tried_again_and_the_failover_completes(
        tmp_path, sim):
    # EC2 sends InsufficientInstanceCapacity with a 500: the client
    # hands it back at once, the engine tries again (FO_LAUNCH_TRIES).
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind="error", action="RunInstances",
                  code="InsufficientInstanceCapacity",
                  message="We currently do not have sufficient t3.micro "
                  "capacity in the Availability Zone you requested.",
                  count=2)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        assert_replaced(sim)
        d.wait_for(r"InsufficientInstanceCapacity.*\(try 2 of 3\)",
                   timeout=30)
        runs = calls(sim, "RunInstances")
        assert [r["status"] for r in runs] == [500, 500, 200]
