"""The real network side of simulated instances.

An instance that runs has a real sshd and a real HTTP server on its own
loopback address; a fault replaces either with nothing (connection
refused) or with a blackhole (connections accepted, then silence).  An
Elastic IP is its own loopback address whose ports are forwarded, per
new connection, to the instance it is currently associated with.
"""

import glob
import grp
import json
import os
import pwd
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SSHD = "/usr/sbin/sshd"



# --- who an sshd of the tests logs in ------------------------------------
#
# The test sshds log in the user running the tests, which is root on CI.
# Left alone, every SSH check would run that account's own login shell
# with its dotfiles (bash started by sshd reads ~/.bashrc; a version
# manager's init there costs seconds on a busy machine). nss_wrapper
# (Debian's libnss-wrapper, the tool Samba's and SSSD's test suites use
# for this) gives sshd a passwd file of the tests' own in which that user
# has a home directory the tests made and /bin/sh as its shell, without
# touching the host's accounts.

def _nss_wrapper():
    libs = glob.glob("/usr/lib/*/libnss_wrapper.so") + \
        glob.glob("/usr/lib/libnss_wrapper.so")
    if not libs:
        raise RuntimeError("libnss_wrapper.so not found: install Debian's "
                           "libnss-wrapper (scripts/test does)")
    return libs[0]


def login_env(workdir):
    """The environment for an sshd whose logins of the current user get
    workdir/home as their home and /bin/sh as their shell."""
    home = os.path.join(workdir, "home")
    os.makedirs(home, 0o700, exist_ok=True)
    uid = os.geteuid()
    passwd = os.path.join(workdir, "nss_passwd")
    group = os.path.join(workdir, "nss_group")
    with open(passwd + ".tmp", "w") as f:
        for p in pwd.getpwall():
            d, sh = p.pw_dir, p.pw_shell
            if p.pw_uid == uid:
                d, sh = home, "/bin/sh"
            f.write(f"{p.pw_name}:x:{p.pw_uid}:{p.pw_gid}:{p.pw_gecos}:"
                    f"{d}:{sh}\n")
    os.replace(passwd + ".tmp", passwd)
    with open(group + ".tmp", "w") as f:
        for g in grp.getgrall():
            f.write(f"{g.gr_name}:x:{g.gr_gid}:{','.join(g.gr_mem)}\n")
    os.replace(group + ".tmp", group)
    env = dict(os.environ)
    env.update(LD_PRELOAD=_nss_wrapper(), NSS_WRAPPER_PASSWD=passwd,
               NSS_WRAPPER_GROUP=group)
    return env

def log(msg):
    print(f"ec2sim: {msg}", file=sys.stderr, flush=True)


def _listen(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(128)
    return s


def _rst_close(sock):
    """Close with a RST, as a dropped connection looks to the peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _kill_listener(sock):
    # shutdown() wakes a thread blocked in accept() on Linux.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Blackhole:
    """Accepts connections and never says a word."""

    def __init__(self, ip, port):
        self.sock = _listen(ip, port)
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True,
                         name=f"blackhole {ip}:{port}").start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)

    def close(self):
        _kill_listener(self.sock)
        with self.lock:
            for c in self.conns:
                c.close()
            self.conns = []


class SourceCut:
    """Per instance address, the client addresses its servers drop, and
    the client addresses they saw. A facility of the test world, not
    AWS behaviour: it lets a test cut one watchdog (one probe source
    address) off from an instance without root (README.md, "Cutting
    off a source")."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cut = {}      # instance ip -> set of client ips
        self.seen = {}     # instance ip -> {client ip: {kind: count}}

    def set(self, ip, sources):
        with self.lock:
            if sources:
                self.cut[ip] = set(sources)
            else:
                self.cut.pop(ip, None)

    def sources(self, ip):
        with self.lock:
            return sorted(self.cut.get(ip, ()))

    def admit(self, ip, client, kind):
        """False when the instance at ip drops client; counted."""
        with self.lock:
            dropped = client in self.cut.get(ip, ())
            c = self.seen.setdefault(ip, {}).setdefault(client, {})
            k = kind + "_cut" if dropped else kind
            c[k] = c.get(k, 0) + 1
            return not dropped

    def view(self, ip):
        with self.lock:
            return {"sources": sorted(self.cut.get(ip, ())),
                    "seen": {c: dict(k) for c, k in
                             self.seen.get(ip, {}).items()}}


class _InstanceHTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "ec2sim-instance/1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        iid = self.server.instance_id
        path = self.path.split("?")[0]
        if path == "/health":
            self._send(200, f"ok {iid}\n")
        elif path == "/data":
            vols = self.server.data_fn(iid)
            self._send(200, json.dumps({"instance_id": iid,
                                        "volumes": vols}, indent=1) + "\n",
                       "application/json")
        elif path == "/":
            self._send(200, f"ec2sim instance {iid}\n")
        else:
            self._send(404, "not found\n")

    def do_PUT(self):
        # PUT /data/sdf writes the data string of the volume the
        # instance has at /dev/sdf (as an application would write).
        iid = self.server.instance_id
        path = self.path.split("?")[0]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        if not path.startswith("/data/"):
            self._send(404, "not found\n")
            return
        dev = "/dev/" + path[len("/data/"):]
        if self.server.write_fn(iid, dev, body):
            self._send(200, "written\n")
        else:
            self._send(404, f"no volume at {dev}\n")


def bind_without_dns(server):
    """HTTPServer.server_bind without its socket.getfqdn() of the
    address: a reverse DNS query to the host's resolver, a packet off
    loopback for a name nobody uses.  server_bind = bind_without_dns."""
    socketserver.TCPServer.server_bind(server)
    server.server_name, server.server_port = server.server_address[:2]


class _InstanceHTTPServer(ThreadingHTTPServer):
    server_bind = bind_without_dns
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    cut = None

    def verify_request(self, request, client_address):
        # A cut source gets a RST before a byte, as a dropped one would.
        if self.cut is None or self.cut.admit(self.server_address[0],
                                              client_address[0], "http"):
            return True
        try:
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                               struct.pack("ii", 1, 0))
        except OSError:
            pass
        return False


class InstanceRuntime:
    """sshd + HTTP server (or blackholes) of one instance."""

    def __init__(self, sim, instance_id, ip, hostkey, workdir):
        self.sim = sim
        self.id = instance_id
        self.ip = ip
        self.hostkey = hostkey
        self.dir = workdir
        self.ssh_mode = "off"      # off | up | blackhole
        self.http_mode = "off"
        self.sshd = None
        self.http = None
        self.bh_ssh = None
        self.bh_http = None

    # -- sshd ----------------------------------------------------------
    def _sshd_config(self):
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(
                f"ListenAddress {self.ip}:{self.sim.ssh_port}\n"
                f"HostKey {self.hostkey}\n"
                f"AuthorizedKeysFile {self.sim.authorized_keys}\n"
                "PidFile none\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\n"
                "UsePAM no\n"
                "StrictModes no\n"
                "PermitRootLogin prohibit-password\n"
                "UseDNS no\n"
                "PrintMotd no\n"
                "X11Forwarding no\n"
                "AllowTcpForwarding no\n"
                "MaxStartups 200\n"
                "MaxSessions 50\n"
                "LoginGraceTime 30\n"
                "LogLevel INFO\n")
        return conf

    def _start_sshd(self):
        conf = self._sshd_config()
        logf = os.path.join(self.dir, "sshd.log")
        self.sshd = subprocess.Popen(
            [SSHD, "-D", "-f", conf, "-E", logf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=login_env(self.dir))

    def _stop_sshd(self):
        if self.sshd is not None:
            self.sshd.terminate()
            try:
                self.sshd.wait(3)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
            self.sshd = None

    # -- http ----------------------------------------------------------
    def _start_http(self):
        srv = _InstanceHTTPServer((self.ip, self.sim.http_port),
                                  _InstanceHTTPHandler)
        srv.instance_id = self.id
        srv.data_fn = self.sim.world.instance_data
        srv.write_fn = self.sim.world.instance_write
        srv.cut = getattr(self.sim, "cut", None)
        threading.Thread(target=srv.serve_forever, args=(0.05,),
                         daemon=True, name=f"http {self.id}").start()
        self.http = srv

    def _stop_http(self):
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None

    # -- desired state -------------------------------------------------
    def apply(self, ssh_mode, http_mode):
        """Bring the listeners to the given modes (off|up|blackhole)."""
        if ssh_mode != self.ssh_mode:
            self._stop_sshd()
            if self.bh_ssh:
                self.bh_ssh.close()
                self.bh_ssh = None
            try:
                if ssh_mode == "up":
                    self._start_sshd()
                elif ssh_mode == "blackhole":
                    self.bh_ssh = Blackhole(self.ip, self.sim.ssh_port)
            except OSError as e:
                log(f"{self.id}: cannot start ssh side on {self.ip}: {e}")
            self.ssh_mode = ssh_mode
        if self.sshd is not None and self.sshd.poll() is not None:
            log(f"{self.id}: sshd exited with {self.sshd.returncode}, "
                f"see {self.dir}/sshd.log")
            self.sshd = None
            self.ssh_mode = "off"
        if http_mode != self.http_mode:
            self._stop_http()
            if self.bh_http:
                self.bh_http.close()
                self.bh_http = None
            try:
                if http_mode == "up":
                    self._start_http()
                elif http_mode == "blackhole":
                    self.bh_http = Blackhole(self.ip, self.sim.http_port)
            except OSError as e:
                log(f"{self.id}: cannot start http side on {self.ip}: {e}")
            self.http_mode = http_mode

    def close(self):
        self.apply("off", "off")


class _Pipe:
    """One forwarded connection: client <-> backend."""

    def __init__(self, client, backend, owner):
        self.client = client
        self.backend = backend
        self.owner = owner
        self.closed = False
        self.lock = threading.Lock()
        for a, b in ((client, backend), (backend, client)):
            threading.Thread(target=self._pump, args=(a, b),
                             daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        # Half-close so the other side sees EOF (ssh needs it), the
        # other pump finishes the job.
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            if getattr(self, "_one_done", False):
                self.close()
            self._one_done = True

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.backend):
            if rst:
                _rst_close(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self.owner.forget(self)


class Forwarder:
    """An Elastic IP: listeners on its address that follow .target."""

    def __init__(self, ip, ports, cut=None, ssh_port=None):
        self.ip = ip
        self.cut = cut
        self.ssh_port = ssh_port
        self.target = None
        self.lock = threading.Lock()
        self.pipes = set()
        self.socks = []
        for port in ports:
            s = _listen(ip, port)
            self.socks.append(s)
            threading.Thread(target=self._accept, args=(s, port),
                             daemon=True, name=f"eip {ip}:{port}").start()

    def set_target(self, ip):
        with self.lock:
            if ip == self.target:
                return
            self.target = ip
            old = list(self.pipes)
        # The address moved: connections to the old instance break, as
        # they do on AWS; new ones go to the new instance.
        for p in old:
            p.close(rst=True)

    def forget(self, pipe):
        with self.lock:
            self.pipes.discard(pipe)

    def _accept(self, sock, port):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(conn, port),
                             daemon=True).start()

    def _connect(self, conn, port):
        target = self.target
        if target is None:
            _rst_close(conn)
            return
        try:
            client = conn.getpeername()[0]
        except OSError:
            _rst_close(conn)
            return
        # sshd cannot drop a source by itself: the cut is made here for
        # SSH; HTTP is cut by the instance's server, which sees the
        # client's address as below.
        if (self.cut is not None and port == self.ssh_port
                and not self.cut.admit(target, client, "ssh")):
            _rst_close(conn)
            return
        # An Elastic IP is a one-to-one NAT of the destination: the
        # instance sees the client's own address, as on AWS.
        # A client this host cannot send from (not on loopback) is
        # forwarded from the sim's own address.
        backend = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            backend.bind((client, 0))
        except OSError:
            pass
        try:
            backend.settimeout(5)
            backend.connect((target, port))
            backend.settimeout(None)
        except OSError:
            backend.close()
            _rst_close(conn)
            return
        with self.lock:
            if self.target != target:
                backend.close()
                _rst_close(conn)
                return
            pipe = _Pipe(conn, backend, self)
            self.pipes.add(pipe)

    def close(self):
        for s in self.socks:
            _kill_listener(s)
        with self.lock:
            old = list(self.pipes)
        for p in old:
            p.close(rst=True)
