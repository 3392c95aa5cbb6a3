"""A leader that dies or freezes in the middle of a failover (issue 15):
another member takes the failover over where the journal in etcd says
it stands, with the same id and ClientToken, and the end is exactly the
crash-free one; a frozen leader that wakes up makes no further
mutating call (its writes are fenced by its lost leadership).

Each member signs with its own access key, so ec2sim's request log
tells which member made each call (haworld.py)."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import BASIC, events, field, replacement  # noqa: E402
from etcdcluster import EtcdCluster  # noqa: E402
from haworld import COMPLETED, LEASE_TTL, HaWorld  # noqa: E402

# Each step's mutating call, held in ec2sim for a while so that the
# leader dies with it in flight (as test_crash.py does for one daemon);
# verify makes none: the replacement's site stays down until the kill.
STEPS = {
    "fence_launch": "RunInstances",
    "detach": "DetachVolume",
    "attach": "AttachVolume",
    "associate": "AssociateAddress",
    "verify": None,
}
HELD = 4.0


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=3) as c:
        yield c


@pytest.mark.parametrize("step", list(STEPS))
def test_the_leader_killed_in_a_step_is_taken_over_to_the_same_end(
        tmp_path, etcd, step):
    action = STEPS[step]
    with HaWorld(tmp_path, etcd) as w:
        lead = w.wait_leader()
        if action:
            w.sim.fault(kind="latency", action=action, latency=HELD,
                        count=1)
        else:
            w.sim.image(BASIC["image"], faults=["http_down"])
        w.break_production()
        if action:
            lead.daemon.wait_for(rf"ec2: {action} attempt 1$", timeout=90)
        else:
            lead.daemon.wait_for(r"event=failover_step .*step=verify",
                            timeout=90)
        fid = field(events(lead.daemon, "failover_started")[0], "failover_id")
        t0 = time.monotonic()
        w.kill(lead)
        if not action:
            # The replacement's site comes up: the new leader's verify
            # can pass.
            w.sim.instance_fault(replacement(w.sim)[0]["id"], "none")
        heir, line = w.wait_any(r"event=cluster_takeover ",
                                timeout=LEASE_TTL + 60,
                                members=w.others(lead))
        took = time.monotonic() - t0
        print(f"\n[ha] killed at {step}: {heir.name} took over after "
              f"{took:.2f}s (lease_ttl {LEASE_TTL}s)", flush=True)
        assert field(line, "failover_id") == fid, line
        assert field(line, "from") == lead.name, line
        heir.daemon.wait_for(COMPLETED, timeout=90)
        w.drain(0.5)
        # Only the heir finished it; the third member never acted.
        third = [m for m in w.others(lead) if m is not heir][0]
        assert not events(third.daemon, "failover_started")
        assert not w.mutating(third)
        assert not events(heir.daemon, "failover_started"), \
            "the heir began a failover of its own"
        w.assert_crash_free_end()


def test_a_frozen_leader_makes_no_call_after_it_wakes(tmp_path, etcd):
    with HaWorld(tmp_path, etcd) as w:
        lead = w.wait_leader()
        # Held long enough that the failover is still at attach when
        # the leader freezes.
        w.sim.fault(kind="latency", action="AttachVolume", latency=HELD,
                    count=1)
        w.break_production()
        lead.daemon.wait_for(r"ec2: AttachVolume attempt 1$", timeout=90)
        fid = field(events(lead.daemon, "failover_started")[0], "failover_id")
        w.freeze(lead)
        heir, line = w.wait_any(r"event=cluster_takeover ",
                                timeout=LEASE_TTL + 60,
                                members=w.others(lead))
        assert field(line, "failover_id") == fid, line
        # Past its lease. The request log's times are ec2sim's clock:
        # this host's, no offset set here.
        woke = time.time()
        n = len(lead.daemon.lines)
        w.thaw(lead)
        heir.daemon.wait_for(COMPLETED, timeout=90)
        # It says it lost the lead once it runs again.
        lead.daemon.wait_for(r"event=cluster_(leader_lost|lease_lost) ",
                        timeout=30, start=n)
        w.drain(1)
        late = w.mutating(lead, since_time=woke)
        assert late == [], "the deposed leader called after waking: %s" % (
            [(r["action"], r["time"]) for r in late])
        assert not events(lead.daemon, "failover_completed")
        w.assert_crash_free_end()


def test_a_leader_stopped_mid_failover_hands_it_over(tmp_path, etcd):
    """systemctl stop on the leader in the middle of a failover: it gives
    its lease back and exits; another member takes the failover over
    from the journal, to the crash-free end."""
    with HaWorld(tmp_path, etcd) as w:
        lead = w.wait_leader()
        w.sim.fault(kind="latency", action="DetachVolume", latency=HELD,
                    count=1)
        w.break_production()
        lead.daemon.wait_for(r"ec2: DetachVolume attempt 1$", timeout=90)
        fid = field(events(lead.daemon, "failover_started")[0], "failover_id")
        w.ha.stop(lead.name)
        lead.daemon.wait_for(r"cluster: member %s leaving" % lead.name,
                             timeout=5)
        heir, line = w.wait_any(r"event=cluster_takeover ",
                                timeout=LEASE_TTL + 60,
                                members=w.others(lead))
        assert field(line, "failover_id") == fid, line
        assert field(line, "from") == lead.name, line
        heir.daemon.wait_for(COMPLETED, timeout=90)
        w.drain(0.5)
        assert not events(heir.daemon, "failover_started"), \
            "the heir began a failover of its own"
        w.assert_crash_free_end()
