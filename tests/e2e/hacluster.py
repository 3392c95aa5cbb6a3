"""Several failoverd members sharing a real etcd (issue 15), for the HA
tests: three daemons ("a", "b", "c" by default) against one ec2sim and
one EtcdCluster, each in its own directory (state_dir, control socket,
log) and probing from its own loopback address, so that ec2sim's cut
can separate one member from an instance.

    with EtcdCluster(tmp_path) as etcd, \\
            Ec2Sim("basic", tmp_path / "sim") as sim, \\
            HaCluster(tmp_path, sim, etcd) as ha:
        leader = ha.wait_leader()         # "a", "b" or "c"
        ha.healthy()                      # every member sees web healthy
        ha.kill(leader)                   # SIGKILL (or sig=SIGSTOP ...)
        ha.member("b").daemon             # a fodtest.Daemon
        ha.ctl("b", "cluster", "--json")  # failoverctl on b's socket

write_conf's keywords pass through (policy=, site=, top=, ...); top is
merged with each member's own settings (probe_source_address and the
cluster group). A member's events are those of its own log."""
import base64
import json
import os
import signal
import time
import urllib.request

from conftest import daemon_env, events, write_conf
from fodtest import Daemon, ctl

SOURCES = {"a": "127.0.0.11", "b": "127.0.0.12", "c": "127.0.0.13"}


class Member:
    def __init__(self, name, directory, conf, source):
        self.name = name
        self.dir = directory
        self.conf = conf
        self.source = source
        self.sock = os.path.join(directory, "control.sock")
        self.daemon = None

    @property
    def alive(self):
        return self.daemon is not None and self.daemon.proc.poll() is None

    def leads(self):
        """By this member's own log: its last leadership event is
        cluster_leader_gained, and it still runs (a stopped process
        may have lost its lease without being able to say so)."""
        if not self.alive:
            return False
        last = None
        for ev, _ in events(self.daemon):
            if ev in ("cluster_leader_gained", "cluster_leader_lost",
                      "cluster_lease_lost"):
                last = ev
        return last == "cluster_leader_gained"


def etcd_get(endpoints, key):
    """The value of key in etcd (str) or None, from whichever endpoint
    answers, through etcd's own v3 gateway."""
    body = json.dumps({"key": base64.b64encode(
        key.encode()).decode()}).encode()
    last = None
    for ep in endpoints:
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


class HaCluster:
    def __init__(self, tmp_path, sim, etcd, names=("a", "b", "c"),
                 lease_ttl=3, quorum=None, timeout=0.5, prefix=None,
                 env=None, cluster=None, member_env=None, **conf_kw):
        self.tmp = str(tmp_path)
        self.sim = sim
        self.etcd = etcd
        self.names = list(names)
        self.env = env
        # name -> environment of that member alone (its own AWS
        # credentials, say), over env.
        self.member_env = member_env or {}
        self.members = {}
        self.prefix = prefix or "/fodtest"
        top = dict(conf_kw.pop("top", None) or {})
        # One host-key secret for every member, as an administrator
        # copies it: a member resuming another's launch must send the
        # same user data and trust the key the replacement got.
        self.host_key_secret = os.path.join(self.tmp, "host-key-secret")
        if not os.path.exists(self.host_key_secret):
            fd = os.open(self.host_key_secret,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
        for i, n in enumerate(self.names):
            d = os.path.join(self.tmp, "member-" + n)
            os.makedirs(d, exist_ok=True)
            group = {"name": n, "members": self.names,
                     "endpoints": list(etcd.endpoints),
                     "prefix": self.prefix, "lease_ttl": lease_ttl,
                     "timeout": timeout,
                     "host_key_secret": self.host_key_secret}
            if quorum is not None:
                group["quorum"] = quorum
            group.update(cluster or {})
            src = SOURCES.get(n, "127.0.0.%d" % (21 + i))
            t = dict(top)
            t.update({"probe_source_address": src, "cluster": group})
            conf = write_conf(d, sim, top=t, **conf_kw)
            self.members[n] = Member(n, d, conf, src)

    def member(self, name):
        return self.members[name]

    def start(self, name=None):
        """Starts every member not running, or member name."""
        for n in [name] if name else self.names:
            m = self.members[n]
            if m.alive:
                continue
            env = dict(self.env or {})
            env.update(self.member_env.get(n, {}))
            m.daemon = Daemon(m.conf, env=daemon_env(m.dir, self.sim, env))
            m.daemon.sock = m.sock

    def stop(self, name=None, check=True):
        """SIGTERM and wait (check as fodtest.Daemon.stop)."""
        for n in [name] if name else self.names:
            m = self.members[n]
            if m.daemon is not None and m.daemon.proc.poll() is None:
                m.daemon.stop(check=check)

    def kill(self, name, sig=signal.SIGKILL):
        """Sends sig to member name (SIGKILL: waits for its end)."""
        d = self.members[name].daemon
        d.signal(sig)
        if sig == signal.SIGKILL:
            d.proc.wait(30)

    def ctl(self, name, *args, check=True):
        return ctl(self.members[name].sock, *args, check=check)

    def leaders(self):
        return [n for n in self.names if self.members[n].leads()]

    def wait_leader(self, timeout=60, other_than=None):
        """The one running member that leads, once there is exactly
        one (and, with other_than, it is not that one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ls = [n for n in self.leaders() if n != other_than]
            if len(ls) == 1:
                return ls[0]
            for m in self.members.values():
                if m.daemon is not None:
                    m.daemon.drain(0.05)
        raise AssertionError("no single leader within %ss (leaders: %s);"
                             " logs:\n%s" % (timeout, self.leaders(),
                                             self.tails()))

    def healthy(self, name="web", timeout=60):
        """Every running member sees service name healthy."""
        for m in self.members.values():
            if m.alive:
                m.daemon.wait_for(r"service %s: healthy" % name,
                                  timeout=timeout)

    def events(self, name, ev=None, start=0):
        return events(self.members[name].daemon, ev, start=start)

    def all_events(self, ev):
        """(member, line) for every member's lines of event ev."""
        out = []
        for n in self.names:
            d = self.members[n].daemon
            if d is not None:
                out += [(n, l) for l in events(d, ev)]
        return out

    def tails(self, n=60):
        out = []
        for name in self.names:
            d = self.members[name].daemon
            if d is not None:
                out.append("--- member %s ---\n%s"
                           % (name, "\n".join(d.lines[-n:])))
        return "\n".join(out)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, *exc):
        # A SIGSTOPped member cannot end on SIGTERM: continue it first.
        for m in self.members.values():
            if m.alive:
                try:
                    m.daemon.signal(signal.SIGCONT)
                except OSError:
                    pass
        self.stop(check=exc_type is None)
