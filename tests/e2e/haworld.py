"""What the HA tests (issue 15) share: three failoverd members, each
with its own state, control socket, probe source address and AWS
credentials, against one ec2sim and a 3-member etcd.

Each member signs with its own access key (the scenario lists three),
so ec2sim's request log says which member made every call: that is how
the tests tell the leader's calls from the others'.

    with EtcdCluster(tmp, 3) as etcd:           # one per test module
        with HaWorld(tmp_path, etcd) as w:
            w.start()                           # a, b and c
            lead = w.wait_leader()              # a Member
            w.break_production()
            lead.d.wait_for(COMPLETED, 90)
            w.mutating(lead)                    # its mutating calls

Every test gets its own key prefix in etcd, so the leases and journals
of one test never meet another's in the module's shared etcd."""
import base64
import json
import os
import signal
import time
import urllib.request
import uuid

import conftest
from conftest import EIP, OLD, VOLS, daemon_env, write_conf
from fodtest import Daemon, ctl
from simfixture import Ec2Sim, scenario_path

NAMES = ("a", "b", "c")
# Each member probes from its own loopback address, so that ec2sim's
# cut can cut off one of them.
SOURCES = {"a": "127.0.0.21", "b": "127.0.0.22", "c": "127.0.0.23"}
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


class Member:
    """One failoverd of the cluster: name, dir, conf, d (its Daemon or
    None), key (its AWS access key)."""

    def __init__(self, name, d, conf, key):
        self.name, self.dir, self.conf, self.key = name, d, conf, key
        self.d = None
        self.killed = self.stopped = False

    @property
    def sock(self):
        return os.path.join(self.dir, "control.sock")

    def alive(self):
        return self.d is not None and self.d.proc.poll() is None

    def events(self, name=None, start=0):
        return conftest.events(self.d, name, start=start) if self.d else []

    def ctl(self, *args, check=True):
        return ctl(self.sock, *args, check=check)


class HaWorld:
    def __init__(self, tmp_path, etcd, policy=None, delays=None,
                 quorum=None, probes=("site", "shell")):
        self.tmp = str(tmp_path)
        self.etcd = etcd
        self.policy = dict({"cooldown": 0}, **(policy or {}))
        self.delays = delays
        self.quorum = quorum
        self.probes = probes
        self.prefix = "/fodtest-" + uuid.uuid4().hex[:12]
        self.sim = None
        self.members = {}

    # -- lifecycle ---------------------------------------------------------

    def scenario(self):
        """basic.json with one access key per member (and the scenario's
        own first, which ec2sim's control side reports)."""
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
        opts = {"delays": self.delays} if self.delays else {}
        self.sim = Ec2Sim(self.scenario(), os.path.join(self.tmp, "sim"),
                          **opts)
        self.sim.start()
        for n in NAMES:
            d = os.path.join(self.tmp, n)
            os.makedirs(d, exist_ok=True)
            self.members[n] = Member(n, d, self.write(n, d), CREDS[n][0])
        return self

    def __exit__(self, exc_type, *exc):
        try:
            for m in self.members.values():
                self.stop(m, check=exc_type is None)
        finally:
            self.sim.stop()

    def write(self, name, d):
        cluster = {"name": name, "members": list(NAMES),
                   "endpoints": list(self.etcd.endpoints),
                   "prefix": self.prefix, "lease_ttl": LEASE_TTL,
                   "timeout": ETCD_TIMEOUT}
        if self.quorum is not None:
            cluster["quorum"] = self.quorum
        return write_conf(d, self.sim, policy=self.policy,
                          probes=self.probes,
                          top={"probe_source_address": SOURCES[name],
                               "cluster": cluster})

    def start(self, *names, env=None):
        """Starts the members named (all of them by default)."""
        for n in names or NAMES:
            m = self.members[n]
            key, secret = CREDS[n]
            e = daemon_env(m.dir, self.sim, dict(
                {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret},
                **(env or {})))
            m.d = Daemon(m.conf, env=e)
            m.d.sock = m.sock
        return self

    def stop(self, m, check=True):
        """SIGTERM; with check, a bad exit or a sanitizer report fails
        (not for a member the test killed)."""
        if m.d is None:
            return
        if m.stopped:
            # SIGSTOPped and left so: SIGTERM would wait forever.
            m.d.proc.send_signal(signal.SIGCONT)
        rc = m.d.stop(check=False)
        if check and not m.killed:
            m.d.check_exit(rc)

    def kill(self, m):
        """SIGKILL: its exit is not checked."""
        m.killed = True
        m.d.proc.send_signal(signal.SIGKILL)

    def freeze(self, m):
        m.stopped = True
        m.d.proc.send_signal(signal.SIGSTOP)

    def thaw(self, m):
        m.stopped = False
        m.d.proc.send_signal(signal.SIGCONT)

    # -- what the cluster says ---------------------------------------------

    def etcd_get(self, key):
        """The value of key in etcd (str) or None, from whichever
        endpoint answers."""
        body = json.dumps({"key": base64.b64encode(
            key.encode()).decode()}).encode()
        last = None
        for ep in self.etcd.endpoints:
            req = urllib.request.Request(ep + "/v3/kv/range", data=body,
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    kvs = json.load(r).get("kvs") or []
            except OSError as e:
                last = e
                continue
            if not kvs:
                return None
            return base64.b64decode(kvs[0].get("value", "")).decode()
        raise AssertionError(f"no etcd endpoint answered: {last}")

    def leader_name(self):
        return self.etcd_get(self.prefix + "/leader")

    def wait_leader(self, timeout=60, other_than=None):
        """The member etcd names the leader, once it has said so in its
        own log too (cluster_leader_gained)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.leader_name()
            if n and n != other_than and n in self.members:
                m = self.members[n]
                if m.alive() and m.events("cluster_leader_gained"):
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(
                    "no leader%s within %ss (etcd says %r); logs:\n%s" % (
                        f" but {other_than}" if other_than else "",
                        timeout, n, self.logs()))
            self.drain(0.2)

    def wait_healthy(self, timeout=60):
        for m in self.alive():
            m.d.wait_for(r"service web: healthy", timeout=timeout)

    def alive(self):
        return [m for m in self.members.values() if m.alive()]

    def others(self, m):
        return [o for o in self.members.values() if o is not m]

    def drain(self, seconds):
        """Lets every member's log come in for seconds."""
        end = time.monotonic() + seconds
        while True:
            for m in self.alive():
                m.d.drain(0)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def wait_any(self, pattern, timeout=60, members=None):
        """(member, line): the first member whose log matches."""
        import re
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for m in members or self.members.values():
                if m.d is None:
                    continue
                for line in m.d.lines:
                    if rx.search(line):
                        return m, line
            if time.monotonic() > deadline:
                raise AssertionError("no member logged %r within %ss:\n%s"
                                     % (pattern, timeout, self.logs()))
            self.drain(0.2)

    def logs(self, n=80):
        out = []
        for m in self.members.values():
            if m.d is not None:
                out.append(f"--- member {m.name} (last {n} lines)")
                out += m.d.lines[-n:]
        return "\n".join(out)

    # -- ec2sim ------------------------------------------------------------

    def break_production(self):
        self.sim.instance_fault(OLD, "both")

    def mutating(self, m=None, since_time=None):
        """The mutating calls ec2sim got (from member m's key only, after
        since_time by ec2sim's clock)."""
        out = mutating(self.sim.requests())
        if m is not None:
            out = [r for r in out if r["access_key"] == m.key]
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
        launches = conftest.calls(self.sim, "RunInstances")
        tokens = {r["params"]["ClientToken"] for r in launches}
        assert tokens == {new["tags"]["failoverd:failover-id"]}, tokens
        # AttachVolume is not idempotent in EC2 (no ClientToken): each
        # volume is attached by exactly one call that EC2 carried out.
        done = [r for r in conftest.calls(self.sim, "AttachVolume")
                if r["status"] == 200]
        per = {}
        for r in done:
            per.setdefault(r["params"]["VolumeId"], []).append(r)
            assert r["params"]["InstanceId"] == new["id"], r
        assert sorted(per) == sorted(VOLS.values()), per
        for vid, rs in per.items():
            assert len(rs) == 1, f"{vid} attached {len(rs)} times: {rs}"
        assert st["addresses"][EIP]["instance"] == new["id"]
        return new
