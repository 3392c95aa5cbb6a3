"""Three failoverd members over a 3-member etcd (issue 15), the smallest
story: the application dies, every member sees it DOWN, and exactly one
failover is made, by the leader; the followers learn the replacement
(its SSH host keys too) and see the service healthy again. The full HA
tests (takeover at each step, freezes, etcd's own troubles) are in the
other test_ha_* modules."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import OLD, assert_replaced, calls, field  # noqa: E402
from etcdcluster import EtcdCluster  # noqa: E402
from hacluster import HaCluster, etcd_get  # noqa: E402
from simfixture import Ec2Sim  # noqa: E402


def test_an_outage_is_failed_over_once_by_the_leader(tmp_path):
    with EtcdCluster(tmp_path) as etcd, \
            Ec2Sim("basic", tmp_path / "sim") as sim, \
            HaCluster(tmp_path, sim, etcd) as ha:
        leader = ha.wait_leader()
        ha.healthy()
        followers = [n for n in ha.names if n != leader]

        # Only the leader may act: a follower refuses, naming it.
        r = ha.ctl(followers[0], "failover", "web", "--yes", check=False)
        assert r.returncode != 0
        assert ("the leader is %s: run it there" % leader) in (
            r.stdout + r.stderr)
        # Every member shows the cluster, and who leads it.
        for n in ha.names:
            shown = json.loads(ha.ctl(n, "cluster", "--json").stdout)
            assert shown["leader"] == leader, shown
            assert "leader %s" % leader in ha.ctl(n, "cluster").stdout
        st = json.loads(ha.ctl(followers[0], "status", "--json").stdout)
        assert st["cluster"] == {"member": followers[0],
                                 "role": "follower", "leader": leader}

        sim.instance_fault(OLD, "both")
        done = ha.member(leader).daemon.wait_for(
            r"event=failover_completed service=web", timeout=120)
        new = assert_replaced(sim)
        assert field(done, "new_instance") == new["id"]

        # The followers learn the replacement and its host keys from
        # its console: their own SSH probes pass again.
        for n in followers:
            ha.member(n).daemon.wait_for(
                r"event=service_recovered service=web", timeout=90)

        # Exactly one failover, by the leader alone.
        started = ha.all_events("failover_started")
        assert [n for n, _ in started] == [leader], started
        assert len(calls(sim, "RunInstances")) == 1
        assert len(calls(sim, "AssociateAddress")) == 1
        assert ha.leaders() == [leader]
        # The replacement's host key came from the secret every member
        # shares: no member made one of its own in its state_dir.
        for n in ha.names:
            assert not os.path.exists(os.path.join(
                ha.member(n).dir, "state", ".hostkey-secret")), n

        # A stop gives the lease back: when the leader has exited, its
        # keys are gone from etcd already, and the next leader need not
        # wait a lease_ttl for them to lapse.
        ha.stop(leader)
        ha.member(leader).daemon.wait_for(
            r"cluster: member %s leaving" % leader, timeout=5)
        assert etcd_get(etcd.endpoints, ha.prefix + "/members/" +
                        leader) is None
        assert etcd_get(etcd.endpoints, ha.prefix + "/leader") != leader
        follower = followers[0]
        ha.member(follower).daemon.wait_for(
            r"event=cluster_member_left .*member=%s" % leader, timeout=30)
