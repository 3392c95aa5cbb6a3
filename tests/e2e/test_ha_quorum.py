"""Verdicts by quorum (issue 15): three failoverd members probe one
instance, each from its own address; the leader fails it over only when
a quorum of them see it DOWN.

Each member signs with its own access key, so ec2sim's request log
tells which member made each call (haworld.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import OLD, calls, events, field  # noqa: E402
from etcdcluster import EtcdCluster  # noqa: E402
from haworld import COMPLETED, HaWorld  # noqa: E402


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=3) as c:
        yield c


def test_a_real_outage_is_failed_over_once_by_the_leader(tmp_path, etcd):
    with HaWorld(tmp_path, etcd) as w:
        lead = w.wait_leader()
        w.break_production()
        lead.daemon.wait_for(COMPLETED, timeout=90)
        for m in w.members.values():
            m.daemon.wait_for(r"event=service_down service=web", timeout=30)
        w.drain(0.5)
        assert len(events(lead.daemon, "failover_started")) == 1
        for m in w.others(lead):
            assert not events(m.daemon, "failover_started"), m.name
            assert not w.mutating(m), m.name
        launches = calls(w.sim, "RunInstances")
        assert len(launches) == 1, launches
        assert launches[0]["access_key"] == w.key(lead)
        # Every mutating call was the leader's.
        assert w.mutating() == w.mutating(lead)
        w.assert_crash_free_end()


def test_one_member_cut_off_causes_no_failover_and_is_named(tmp_path,
                                                            etcd):
    with HaWorld(tmp_path, etcd) as w:
        lead = w.wait_leader()
        cut = w.others(lead)[0]
        starts = {m.name: len(m.daemon.lines) for m in w.members.values()}
        w.sim.cut(OLD, [cut.source])
        cut.daemon.wait_for(r"event=service_down service=web", timeout=60,
                       start=starts[cut.name])
        m, line = w.wait_any(r"event=cluster_verdict_split .*service=web",
                             timeout=30)
        assert field(line, "down") == cut.name, line
        up = set(field(line, "up").split(","))
        assert up == {o.name for o in w.others(cut)}, line
        # Several probe rounds of the two members that still see it: a
        # failover would have begun by now had one DOWN been enough.
        w.drain(4)
        for o in w.others(cut):
            assert not events(o.daemon, "service_down",
                              start=starts[o.name]), o.name
        for x in w.members.values():
            assert not events(x.daemon, "failover_started"), x.name
        assert w.mutating() == []
        w.sim.uncut(OLD)
        cut.daemon.wait_for(r"event=service_recovered service=web", timeout=60,
                       start=starts[cut.name])
        assert w.sim.instance(OLD)["state"] == "running"
