"""A real etcd cluster for the tests: members of Debian's /usr/bin/etcd
(etcd-server) on 127.0.0.1, each with free client and peer ports, its
data directory under the test's tmp directory and a token of its own, so
that clusters of parallel tests never meet.

    with EtcdCluster(tmp_path, size=3) as c:
        c.endpoints          # ["http://127.0.0.1:P", ...], member order
        c.stop(1); c.start(1)  # one member down and back
        c.wait_healthy()

A member whose process ends is an error the test hears of (stop() is the
only way one goes)."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

ETCD = "/usr/bin/etcd"


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together so
    that the kernel does not hand out one twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdCluster:
    def __init__(self, tmp, size=3, tls=None):
        """tls: None, or a dict of cert, key, ca (PEM paths) that makes
        the client URLs https and asks clients for a certificate."""
        self.dir = os.path.join(str(tmp), "etcd")
        os.makedirs(self.dir, exist_ok=True)
        self.size = size
        self.tls = tls
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.names = [f"m{i}" for i in range(size)]
        scheme = "https" if tls else "http"
        self.endpoints = [f"{scheme}://127.0.0.1:{p}"
                          for p in self.client_ports]
        self.token = "fodtest-" + uuid.uuid4().hex
        self.procs = [None] * size
        self.logs = [os.path.join(self.dir, f"{n}.log") for n in self.names]

    def args(self, i):
        peers = ",".join(f"{n}=http://127.0.0.1:{p}"
                         for n, p in zip(self.names, self.peer_ports))
        a = [ETCD, "--name", self.names[i],
             "--data-dir", os.path.join(self.dir, self.names[i]),
             "--listen-client-urls", self.endpoints[i],
             "--advertise-client-urls", self.endpoints[i],
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
             "--initial-advertise-peer-urls",
             f"http://127.0.0.1:{self.peer_ports[i]}",
             "--initial-cluster", peers,
             "--initial-cluster-token", self.token,
             "--initial-cluster-state", "new",
             # A loaded machine must not make members call elections
             # all the time: ten times etcd's default timings.
             "--heartbeat-interval", "250",
             "--election-timeout", "2500"]
        if self.tls:
            a += ["--cert-file", self.tls["cert"],
                  "--key-file", self.tls["key"],
                  "--trusted-ca-file", self.tls["ca"],
                  "--client-cert-auth"]
        return a

    def start(self, i=None):
        """Starts every member, or member i (back with its data)."""
        for j in range(self.size) if i is None else [i]:
            assert self.procs[j] is None, f"member {j} already runs"
            with open(self.logs[j], "ab") as log:
                self.procs[j] = subprocess.Popen(
                    self.args(j), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self, i=None, sig=signal.SIGTERM):
        """Stops every member, or member i."""
        for j in range(self.size) if i is None else [i]:
            p = self.procs[j]
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(sig)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            self.procs[j] = None

    def health(self, i):
        """etcd's own /health of member i: True when it has a leader."""
        ctx = None
        if self.tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
            ctx.load_cert_chain(self.tls["client_cert"],
                                self.tls["client_key"])
        try:
            with urllib.request.urlopen(self.endpoints[i] + "/health",
                                        timeout=2, context=ctx) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for j, p in enumerate(self.procs):
                if p is not None and p.poll() is not None:
                    raise AssertionError(
                        f"etcd member {j} exited {p.returncode}: "
                        + self.log_tail(j))
            if all(self.health(j) for j, p in enumerate(self.procs)
                   if p is not None):
                return
            time.sleep(0.2)
        raise AssertionError("etcd cluster not healthy: "
                             + self.log_tail(0))

    def log_tail(self, i, n=2000):
        with open(self.logs[i], "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def __enter__(self):
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
