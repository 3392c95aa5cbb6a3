"""What the full HA tests (issue 15) add to hacluster.py: an ec2sim in
which each member signs with its own access key, so that ec2sim's
request log says which member made every call; the leader as etcd names
it; and the crash-free end state of a failover.

    with EtcdCluster(tmp, 3) as etcd:           # one per test module
        with HaWorld(tmp_path, etcd) as w:      # a, b and c started
            lead = w.wait_leader()              # a hacluster.Member
            w.break_production()
            lead.daemon.wait_for(COMPLETED, 90)
            w.mutating(lead)                    # its mutating calls

Every test gets its own key prefix in etcd, so the leases and journals
of one test never meet another's in the module's shared etcd."""
import json
import os
import re
import signal
import time
import uuid

import conftest
from conftest import EIP, OLD, VOLS
from hacluster import HaCluster, etcd_get
from simfixture import Ec2Sim, scenario_path

NAMES = ("a", "b", "c")
CREDS = {n: ("AKIAEC2SIMMEMBER000" + n.upper(),
             "ec2simMemberSecretKey00000000000000000" + n.upper() * 2)
         for n in NAMES}
# A short lease keeps takeovers quick; the etcd timeout must stay under
# a third of it (failoverd.conf(5)).
LEASE_TTL = 3
ETCD_TIMEOUT = 0.9
COMPLETED = r"event=failover_completed"
READ_ONLY = ("Describe", "Get")


def mutating(reqs):
    """The requests of reqs that change something (not Describe*,
    Get*, nor a DryRun)."""
    return [r for r in reqs if r["action"]
            and not r["action"].startswith(READ_ONLY)
            and str(r["params"].get("DryRun", "")).lower() != "true"]


class HaWorld:
    def __init__(self, tmp_path, etcd, policy=None, quorum=None):
        self.tmp = str(tmp_path)
        self.etcd = etcd
        self.policy = dict({"cooldown": 0}, **(policy or {}))
        self.quorum = quorum
        self.prefix = "/fodtest-" + uuid.uuid4().hex[:12]
        self.sim = None
        self.ha = None

    def scenario(self):
        """basic.json with one access key per member (after the
        scenario's own first one, which ec2sim's env() hands out)."""
        with open(scenario_path("basic")) as f:
            sc = json.load(f)
        own = sc.get("credentials") or [{
            "access_key": "AKIAEC2SIMSTATIC0001",
            "secret_key": "ec2simStaticSecretKey0000000000000000001"}]
        sc["credentials"] = own + [{"access_key": k, "secret_key": s}
                                   for k, s in CREDS.values()]
        os.makedirs(self.tmp, exist_ok=True)
        path = os.path.join(self.tmp, "ha-scenario.json")
        with open(path, "w") as f:
            json.dump(sc, f)
        return path

    def __enter__(self):
        self.sim = Ec2Sim(self.scenario(), os.path.join(self.tmp, "sim"))
        self.sim.start()
        try:
            self.ha = HaCluster(
                self.tmp, self.sim, self.etcd, names=NAMES,
                lease_ttl=LEASE_TTL, timeout=ETCD_TIMEOUT,
                quorum=self.quorum, prefix=self.prefix, policy=self.policy,
                member_env={n: {"AWS_ACCESS_KEY_ID": k,
                                "AWS_SECRET_ACCESS_KEY": s}
                            for n, (k, s) in CREDS.items()})
            self.ha.__enter__()
        except BaseException:
            self.sim.stop()
            raise
        self.members = self.ha.members
        return self

    def __exit__(self, *exc):
        try:
            self.ha.__exit__(*exc)
        finally:
            self.sim.stop()

    # -- members -----------------------------------------------------------

    def key(self, m):
        return CREDS[m.name][0]

    def others(self, m):
        return [o for o in self.members.values() if o is not m]

    def kill(self, m):
        """SIGKILL, and wait for its end."""
        self.ha.kill(m.name)

    def freeze(self, m):
        self.ha.kill(m.name, signal.SIGSTOP)

    def thaw(self, m):
        self.ha.kill(m.name, signal.SIGCONT)

    def drain(self, seconds):
        """Lets every member's log come in for seconds."""
        end = time.monotonic() + seconds
        while True:
            for m in self.members.values():
                if m.alive:
                    m.daemon.drain(0)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def wait_any(self, pattern, timeout=60, members=None):
        """(member, line): the first member whose log matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for m in members or self.members.values():
                for line in list(m.daemon.lines if m.daemon else ()):
                    if rx.search(line):
                        return m, line
            if time.monotonic() > deadline:
                raise AssertionError("no member logged %r within %ss:\n%s"
                                     % (pattern, timeout, self.ha.tails()))
            self.drain(0.2)

    # -- what etcd says ----------------------------------------------------

    def etcd_get(self, key):
        """The value of key in etcd (str) or None."""
        return etcd_get(self.etcd.endpoints, key)

    def leader_name(self):
        return self.etcd_get(self.prefix + "/leader")

    def wait_leader(self, timeout=60):
        """The member that leads, once its own log and etcd's leader
        key agree on it; and every member sees web healthy."""
        deadline = time.monotonic() + timeout
        name = self.ha.wait_leader(timeout=timeout)
        while self.leader_name() != name:
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s says it leads, etcd names %r" % (
                        name, self.leader_name()))
            self.drain(0.2)
        self.ha.healthy(timeout=timeout)
        return self.members[name]

    # -- ec2sim ------------------------------------------------------------

    def break_production(self):
        self.sim.instance_fault(OLD, "both")

    def mutating(self, m=None, since_time=None):
        """The mutating calls ec2sim got (from member m's key only; after
        since_time by ec2sim's clock, which is this host's)."""
        out = mutating(self.sim.requests())
        if m is not None:
            out = [r for r in out if r["access_key"] == self.key(m)]
        if since_time is not None:
            out = [r for r in out if r["time"] > since_time]
        return out

    def assert_crash_free_end(self):
        """The end state of a failover that no crash touched: one
        replacement (one ClientToken however often it was sent), each
        volume attached once, to it, the EIP on it, the old instance
        stopped, nothing else running."""
        new = conftest.assert_replaced(self.sim)
        st = self.sim.state()
        running = [i["id"] for i in st["instances"].values()
                   if i["state"] in ("pending", "running")]
        assert running == [new["id"]], "orphaned: %s" % running
        tokens = {r["params"]["ClientToken"]
                  for r in conftest.calls(self.sim, "RunInstances")}
        assert tokens == {new["tags"]["failoverd:failover-id"]}, tokens
        # AttachVolume is not idempotent in EC2 (no ClientToken): each
        # volume is attached by exactly one call that EC2 carried out.
        per = {}
        for r in conftest.calls(self.sim, "AttachVolume"):
            if r["status"] == 200:
                per.setdefault(r["params"]["VolumeId"], []).append(r)
                assert r["params"]["InstanceId"] == new["id"], r
        assert sorted(per) == sorted(VOLS.values()), per
        for vid, rs in per.items():
            assert len(rs) == 1, f"{vid} attached {len(rs)} times: {rs}"
        assert st["addresses"][EIP]["instance"] == new["id"]
        return new
