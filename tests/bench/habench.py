"""What the cluster benchmarks (issue 15) share: a 3-member etcd on
loopback (tests/e2e/etcdcluster.py, Debian's etcd-server), failoverd
members with a cluster group, their logs in files read by pattern, the
etcd round trip, and ec2sim's basic world as one service to fail over."""
import base64
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from benchlib import Daemon, log_stamp, median  # noqa: E402
from etcdcluster import EtcdCluster  # noqa: E402  (benchlib put e2e on path)
from simfixture import BASIC, Ec2Sim  # noqa: E402

NAMES = ["alpha", "bravo", "charlie"]


def host_key_secret(work):
    """The one host-key secret every member is given (as an
    administrator copies it), made once in work."""
    path = os.path.join(work, "host-key-secret")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    return path


def cluster_group(name, members, endpoints, prefix, secret, lease_ttl=4,
                  timeout=1.0):
    q = ", ".join(f'"{m}"' for m in members)
    e = ", ".join(f'"{x}"' for x in endpoints)
    return (f'cluster = {{ name = "{name}"; members = [ {q} ]; '
            f'endpoints = [ {e} ]; prefix = "{prefix}"; '
            f'lease_ttl = {lease_ttl}; timeout = {timeout}; '
            f'host_key_secret = "{secret}"; }};\n')


def sim_service(sim, interval=1.0, timeout=0.8, fall=2, rise=2):
    """The demo's service on ec2sim's basic world: an HTTP probe through
    the EIP, the two data volumes moved; cooldown 0 so that a failover
    may follow the last (and up to 100 a day)."""
    return f"""{{ name = "web"; eip_allocation_id = "{BASIC['eip']}";
    volumes = ( {{ id = "{BASIC['volumes']['/dev/sdf']}"; device = "/dev/sdf"; }},
                {{ id = "{BASIC['volumes']['/dev/sdg']}"; device = "/dev/sdg"; }} );
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}";
               security_groups = [ "{BASIC['security_group']}" ]; }};
    policy = {{ cooldown = 0; max_failovers = 100; fence_timeout = 30;
               launch_timeout = 60;
               detach_timeout = 30; verify_timeout = 30; }};
    probes = ( {{ name = "site"; type = "http"; port = {sim.http_port};
      path = "/health"; interval = {interval}; timeout = {timeout};
      fall = {fall}; rise = {rise}; }} ); }}"""


def start_sim(work):
    sim = Ec2Sim("basic", os.path.join(work, "sim"))
    sim.start()
    env = dict(sim.env())
    env["AWS_CONFIG_FILE"] = os.path.join(work, "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(work,
                                                      "no-aws-credentials")
    return sim, env


class Members:
    """failoverd members (or one daemon, with cluster=None), each in its
    own directory, each logging to a file that is searched by pattern."""

    def __init__(self, work, services, endpoints=None, names=NAMES,
                 prefix="/fodbench", lease_ttl=4, env=None, sim=False):
        self.names = list(names)
        self.d, self.logs = {}, {}
        for n in self.names:
            wd = os.path.join(work, n)
            os.makedirs(wd, exist_ok=True)
            head = (cluster_group(n, self.names, endpoints, prefix,
                                  host_key_secret(work), lease_ttl)
                    if endpoints else "")
            self.logs[n] = os.path.join(wd, "failoverd.log")
            kw = {"aws": "{ }", "dead_aws": False} if sim else {}
            self.d[n] = Daemon(services, workdir=wd, head=head, env=env,
                               logfile=self.logs[n], **kw)

    def lines(self, name):
        try:
            with open(self.logs[name], errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def find(self, pattern, names=None, after=0.0):
        """Every (stamp, member, line) matching pattern, logged at or
        after the wall-clock time after, earliest first."""
        rx = re.compile(pattern)
        out = []
        for n in names or self.names:
            for line in self.lines(n):
                if rx.search(line):
                    t = log_stamp(line)
                    if t >= after:
                        out.append((t, n, line))
        return sorted(out)

    def wait(self, pattern, names=None, after=0.0, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hits = self.find(pattern, names, after)
            if hits:
                return hits[0]
            for n in names or self.names:
                p = self.d[n].proc
                if p.poll() is not None and p.returncode != -9:
                    raise RuntimeError(f"member {n} exited rc="
                                       f"{p.returncode}: "
                                       + "\n".join(self.lines(n)[-5:]))
            time.sleep(0.05)
        raise RuntimeError(f"no {pattern!r} from {names or self.names} "
                           f"within {timeout}s")

    def kill(self, name):
        self.d[name].proc.send_signal(signal.SIGKILL)
        self.d[name].proc.wait()
        return time.time()

    def stop(self):
        for d in self.d.values():
            d.stop()


class Etcd:
    """A 3-member etcd in a temporary directory."""

    def __init__(self, size=3):
        self.dir = tempfile.mkdtemp(prefix="fodbench-etcd.")
        self.c = EtcdCluster(self.dir, size=size)
        self.c.__enter__()
        self.endpoints = self.c.endpoints

    def call(self, i, path, body):
        req = urllib.request.Request(
            self.endpoints[i] + path, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def rtt(self, n=50):
        """Median seconds of a put and of a range through the v3 HTTP
        gateway of member 0, as failoverd makes them."""
        k = base64.b64encode(b"/fodbench-rtt").decode()
        v = base64.b64encode(b"x").decode()
        put, get = [], []
        for _ in range(n):
            t = time.perf_counter()
            self.call(0, "/v3/kv/put", {"key": k, "value": v})
            put.append(time.perf_counter() - t)
            t = time.perf_counter()
            self.call(0, "/v3/kv/range", {"key": k})
            get.append(time.perf_counter() - t)
        return median(put), median(get)

    def keys(self, prefix):
        """{key: mod_revision} under prefix, and the store's revision."""
        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])
        r = self.call(0, "/v3/kv/range", {
            "key": base64.b64encode(p).decode(),
            "range_end": base64.b64encode(end).decode(),
            "keys_only": True})
        return ({base64.b64decode(kv["key"]).decode():
                 int(kv["mod_revision"]) for kv in r.get("kvs", [])},
                int(r["header"]["revision"]))

    def metrics(self, i):
        with urllib.request.urlopen(self.endpoints[i] + "/metrics",
                                    timeout=5) as r:
            return r.read().decode()

    def stop(self):
        self.c.__exit__(None, None, None)
