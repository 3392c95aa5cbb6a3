"""Real servers for the probe tests, on 127.x loopback addresses: sshd
(OpenSSH, logging in the current user with a home and a shell of the
tests' own, its own host key and AuthorizedKeysFile),
an HTTP(S) server whose answers the test can change, and, from ec2sim,
the Blackhole that accepts connections and never says a word."""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fodtest import SRCDIR

sys.path.insert(0, os.path.join(SRCDIR, "tests", "ec2sim"))
from sim_net import Blackhole, login_env  # noqa: E402  (shared with ec2sim)
from sim_net import bind_without_dns  # noqa: E402

SSHD = "/usr/sbin/sshd"


def wait_listening(ip, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {ip}:{port}")


def keygen(path, kind="ed25519"):
    """A key pair (path, path.pub) made by ssh-keygen."""
    args = ["ssh-keygen", "-q", "-N", "", "-C", "fodtest", "-f", str(path),
            "-t", kind]
    if kind == "rsa":
        args += ["-b", "2048"]
    subprocess.run(args, check=True)
    return str(path)


def known_hosts_line(ip, port, hostkey_pub):
    """The known_hosts entry ssh itself would write for ip:port."""
    kind, blob = open(hostkey_pub).read().split()[:2]
    host = ip if port == 22 else f"[{ip}]:{port}"
    return f"{host} {kind} {blob}\n"


class Sshd:
    """OpenSSH's sshd in the foreground on ip:port, with its own config."""

    def __init__(self, workdir, ip, port, hostkey, authorized_keys,
                 extra=""):
        self.ip, self.port = ip, port
        self.conf = os.path.join(workdir, f"sshd_config.{ip}.{port}")
        self.log = os.path.join(workdir, f"sshd.{ip}.{port}.log")
        with open(self.conf, "w") as f:
            f.write(f"ListenAddress {ip}:{port}\n"
                    f"HostKey {hostkey}\n"
                    f"AuthorizedKeysFile {authorized_keys}\n"
                    "PidFile none\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "PubkeyAuthentication yes\n"
                    "UsePAM no\n"
                    "StrictModes no\n"
                    "PermitRootLogin prohibit-password\n"
                    "UseDNS no\n"
                    "PrintMotd no\n"
                    "MaxStartups 100\n"
                    "LogLevel INFO\n" + extra)
        if os.geteuid() == 0:
            # sshd as root insists on its privilege separation directory.
            os.makedirs("/run/sshd", 0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", self.conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),
            env=login_env(os.path.join(workdir, f"login.{ip}.{port}")))
        try:
            wait_listening(ip, port)
        except AssertionError:
            self.close()
            raise AssertionError("sshd did not start:\n" +
                                 open(self.log).read())

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "fodtest/1"

    def log_message(self, fmt, *args):
        pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        srv = self.server
        with srv.lock:
            srv.requests.append((self.command, path,
                                 self.headers.get("Host")))
            route = srv.routes.get(path)
        if route is None:
            code, body = 404, "not found\n"
        elif callable(route):
            code, body = route(self)
        else:
            code, body = route
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class HttpServer(ThreadingHTTPServer):
    """routes maps a path to (status, body) or to fn(handler) returning
    one; set_route() changes an answer while the daemon probes it."""
    server_bind = bind_without_dns
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ip, port, routes, certfile=None, keyfile=None):
        super().__init__((ip, port), _Handler)
        self.lock = threading.Lock()
        self.routes = dict(routes)
        self.requests = []
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, args=(0.05,),
                         daemon=True).start()

    def set_route(self, path, answer):
        with self.lock:
            self.routes[path] = answer

    def close(self):
        self.shutdown()
        self.server_close()


def self_signed_cert(workdir, name):
    """A self-signed certificate for DNS name `name`, made with the
    openssl CLI; it is its own CA. Returns (certfile, keyfile)."""
    cert = os.path.join(workdir, f"{name}.crt")
    key = os.path.join(workdir, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return cert, key
