#!/usr/bin/python3
"""ec2sim: an EC2 Query API + IMDSv2 emulator whose instances are real.

    /usr/bin/python3 tests/ec2sim/ec2sim.py --scenario FILE --workdir DIR
        [--net 127.77] [--tls] [--port 0] [--policy FILE]
        [--delays JSON] [--timing aws] [--cred-lifetime S]
        [--ssh-port N] [--http-port N]

See tests/ec2sim/README.md.  Only 127.0.0.0/8 is ever used.
"""

import argparse
import copy
import email.utils
import getpass
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sim_auth import CredStore, credential_access_key, verify  # noqa: E402
import sim_overlay  # noqa: E402
import sim_sts  # noqa: E402
from sim_model import (API_VERSION, ApiError, Ec2Model,  # noqa: E402
                       error_xml)
from sim_net import Forwarder, InstanceRuntime, SourceCut, log  # noqa: E402
from sim_net import bind_without_dns  # noqa: E402
import sim_timing  # noqa: E402
from sim_world import DEFAULT_DELAYS, World  # noqa: E402

CLAIM_PORT = 65001      # held on A.B.0.1 while a sim owns the net A.B
EXIT_NET_BUSY = 3
HIDDEN_PARAMS = ("Signature", "X-Amz-Signature", "X-Amz-Security-Token",
                 "X-Amz-Credential", "AWSAccessKeyId", "SignatureMethod",
                 "SignatureVersion", "X-Amz-Algorithm", "X-Amz-Date",
                 "X-Amz-SignedHeaders", "WebIdentityToken")
FAULT_KINDS = ("throttle", "error500", "error503", "error", "drop", "hang",
               "latency", "drop_after", "error500_after")
# Carried out first, then the reply is lost or replaced by a 500.
AFTER_KINDS = ("drop_after", "error500_after")


class Server(ThreadingHTTPServer):
    server_bind = bind_without_dns
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Faults:
    """API fault rules, consumed in order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.seq = 0

    def add(self, rule):
        kind = rule.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        r = {"action": rule.get("action", "*"), "kind": kind,
             "count": rule.get("count", None if kind == "latency" else 1),
             "latency": float(rule.get("latency", 0)),
             "seconds": float(rule.get("seconds", 3600)),
             "code": rule.get("code"), "message": rule.get("message"),
             "status": rule.get("status"), "hits": 0,
             # Only requests carrying these parameters (a filter...).
             "match": {str(k): str(v) for k, v in
                       (rule.get("match") or {}).items()}}
        if kind == "error" and not r["code"]:
            raise ValueError("fault kind 'error' needs a code")
        with self.lock:
            self.seq += 1
            r["id"] = self.seq
            self.rules.append(r)
        return r

    def take(self, action, params=None, dry=False):
        """-> (latency seconds, rule or None) for one call. A dry run
        carries nothing out: faults for after the action skip it."""
        latency = 0.0
        hit = None
        params = params or {}
        with self.lock:
            for r in self.rules:
                if r["action"] not in ("*", action):
                    continue
                if dry and r["kind"] in AFTER_KINDS:
                    continue
                if any(params.get(k) != v for k, v in r["match"].items()):
                    continue
                if r["kind"] == "latency":
                    latency += r["latency"]
                    self._use(r)
                elif hit is None:
                    hit = r
                    self._use(r)
            self.rules = [r for r in self.rules
                          if r["count"] is None or r["count"] > 0]
        return latency, hit

    @staticmethod
    def _use(r):
        r["hits"] += 1
        if r["count"] is not None:
            r["count"] -= 1

    def clear(self):
        with self.lock:
            self.rules = []

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]


class Policy:
    """Deny list: {"deny": [actions]} or an IAM-like Statement list."""

    def __init__(self, doc=None):
        self.doc = doc or {}

    @staticmethod
    def _match(patterns, action):
        if isinstance(patterns, str):
            patterns = [patterns]
        for pat in patterns:
            pat = pat.split(":", 1)[1] if pat.startswith("ec2:") else pat
            rx = "^" + re.escape(pat).replace(r"\*", ".*") + "$"
            if re.match(rx, action):
                return True
        return False

    def allowed(self, action, access_key):
        doc = self.doc
        deny = doc.get("deny")
        if isinstance(deny, dict):
            if self._match(deny.get("*", []), action) or \
                    self._match(deny.get(access_key or "", []), action):
                return False
        elif deny and self._match(deny, action):
            return False
        stmts = doc.get("Statement")
        if stmts:
            allowed = False
            for s in stmts:
                if self._match(s.get("Action", []), action):
                    if s.get("Effect") == "Deny":
                        return False
                    allowed = True
            return allowed
        return True


class Sim:
    def __init__(self, args):
        self.args = args
        self.net = args.net
        self.workdir = os.path.abspath(args.workdir)
        self.clock_offset = 0.0
        self.skew_check = True
        self.stopping = threading.Event()
        self.net_kick = threading.Event()
        self.events = []
        self.events_lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.request_log = []
        self.req_seq = 0
        self.runtimes = {}
        self.forwarders = {}
        self.cut = SourceCut()
        self.net_lock = threading.Lock()
        self.faults = Faults()
        self.imds_fault = None
        self.imds_tokens = {}
        self.sts = sim_sts.Sts(self)
        self.servers = []
        self.ready = {}
        self.model = Ec2Model()
        self.api_ip = f"{self.net}.0.1"

    # --- small services for the world -----------------------------------
    def now(self):
        return time.time() + self.clock_offset

    def event(self, msg):
        with self.events_lock:
            self.events.append({"time": self.now(), "event": msg})
            del self.events[:-2000]

    def kick_net(self):
        self.net_kick.set()

    def add_runtime(self, inst):
        with self.net_lock:
            self.runtimes[inst.id] = InstanceRuntime(
                self, inst.id, inst.ip, inst.hostkey, inst.dir)

    def add_forwarder(self, alloc, ip):
        ports = (self.ssh_port, self.http_port)
        with self.net_lock:
            self.forwarders[alloc] = Forwarder(ip, ports, self.cut,
                                               self.ssh_port)

    # --- setup ------------------------------------------------------------
    def claim_net(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((self.api_ip, CLAIM_PORT))
            s.listen(1)
        except OSError as e:
            print(f"ec2sim: net {self.net} is in use ({self.api_ip}:"
                  f"{CLAIM_PORT}: {e.strerror})", file=sys.stderr)
            sys.exit(EXIT_NET_BUSY)
        self.claim = s

    def pick_ports(self):
        root = os.geteuid() == 0

        def free(port):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((f"{self.net}.1.1", port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        a = self.args
        self.ssh_port = a.ssh_port or (22 if root and free(22) else 2222)
        self.http_port = a.http_port or (80 if root and free(80) else 8080)

    def make_keys(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.ssh_key = os.path.join(self.workdir, "id_ed25519")
        if not os.path.exists(self.ssh_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-C", "ec2sim-user", "-f", self.ssh_key],
                           check=True, stdin=subprocess.DEVNULL)
        self.authorized_keys = os.path.join(self.workdir,
                                            "authorized_keys")
        with open(self.ssh_key + ".pub") as f, \
                open(self.authorized_keys, "w") as out:
            out.write(f.read())
        if os.geteuid() == 0:
            # sshd's privilege separation directory.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def make_tls(self):
        d = os.path.join(self.workdir, "tls")
        os.makedirs(d, exist_ok=True)
        ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
        key, csr = os.path.join(d, "server.key"), os.path.join(d, "srv.csr")
        crt, ext = os.path.join(d, "server.pem"), os.path.join(d, "ext.cnf")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        run = {"check": True, "stdout": subprocess.DEVNULL,
               "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
        subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", ca_key,
                        "-out", ca, "-days", "7",
                        "-subj", "/CN=ec2sim test CA",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                       **run)
        with open(ext, "w") as f:
            f.write(f"subjectAltName=IP:{self.api_ip},DNS:localhost\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n")
        subprocess.run(["openssl", "req", *ec, "-keyout", key, "-out", csr,
                        "-subj", f"/CN={self.api_ip}"], **run)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca,
                        "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                        "-days", "7", "-extfile", ext], **run)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        return ca, ctx

    def load_scenario(self):
        path = self.args.scenario
        if not os.path.exists(path):
            here = os.path.dirname(os.path.abspath(__file__))
            alt = os.path.join(here, "scenarios", path + ".json")
            if os.path.exists(alt):
                path = alt
        with open(path) as f:
            sc = json.load(f)
        if self.args.timing:
            # The profile over the scenario's delays, --delays over both.
            prof, skipped = sim_timing.delays(self.args.timing,
                                              DEFAULT_DELAYS)
            sc.setdefault("delays", {}).update(prof)
            if skipped:
                log(f"timing {self.args.timing}: this sim does not model "
                    f"{', '.join(skipped)}; left out")
        if self.args.delays:
            sc.setdefault("delays", {}).update(json.loads(self.args.delays))
        self.scenario = sc
        creds = sc.get("credentials") or [{
            "access_key": "AKIAEC2SIMSTATIC0001",
            "secret_key": "ec2simStaticSecretKey0000000000000000001"}]
        self.access_key = creds[0]["access_key"]
        self.secret_key = creds[0]["secret_key"]
        imds = sc.get("imds", {})
        self.imds_conf = {
            "instance_id": imds.get("instance_id", "i-0eeeeeeeeeeeeeee1"),
            "az": imds.get("az", sc.get("region", "us-east-1") + "a"),
            "role": imds.get("role", "ec2sim-role"),
            "instance_type": imds.get("instance_type", "t3.small"),
            "ami": imds.get("ami", "ami-0eeeeeeeeeeeeeee1"),
        }
        lifetime = self.args.cred_lifetime or imds.get(
            "credential_lifetime", 3600)
        self.creds = CredStore({c["access_key"]: c["secret_key"]
                                for c in creds}, float(lifetime), self.now)
        policy = sc.get("policy")
        if self.args.policy:
            with open(self.args.policy) as f:
                policy = json.load(f)
        self.policy = Policy(policy)
        self.world = World(self, sc)

    def write_known_hosts(self):
        def host(ip):
            return ip if self.ssh_port == 22 else f"[{ip}]:{self.ssh_port}"
        lines = []
        w = self.world
        for inst in w.instances.values():
            names = [host(inst.ip)] + [host(a.ip)
                                       for a in w.addresses.values()
                                       if a.instance == inst.id]
            kt, kb = inst.hostkey_pub.split()[:2]
            lines.append(f"{','.join(names)} {kt} {kb}\n")
        self.known_hosts = os.path.join(self.workdir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.writelines(lines)

    def serve(self, handler, port, tls_ctx=None):
        srv = Server((self.api_ip, port), handler)
        srv.sim = self
        if tls_ctx is not None:
            # Handshake in the handler thread, not in the accept loop.
            srv.socket = tls_ctx.wrap_socket(srv.socket, server_side=True,
                                             do_handshake_on_connect=False)
        threading.Thread(target=srv.serve_forever, args=(0.1,),
                         daemon=True).start()
        self.servers.append(srv)
        return srv.server_address[1]

    def start(self):
        t0 = time.monotonic()
        self.claim_net()
        self.pick_ports()
        self.make_keys()
        self.load_scenario()
        self.write_known_hosts()
        ca, ctx = (None, None)
        if self.args.tls:
            ca, ctx = self.make_tls()
        self.scheme = "https" if self.args.tls else "http"
        api_port = self.serve(ApiHandler, self.args.port, ctx)
        imds_port = self.serve(ImdsHandler, 0)
        ctl_port = self.serve(ControlHandler, 0)
        container_port = self.serve(ContainerHandler, 0)
        self.world.sched.start()
        threading.Thread(target=self.net_loop, daemon=True,
                         name="net").start()
        self.kick_net()
        self.ready = {
            "endpoint": f"{self.scheme}://{self.api_ip}:{api_port}/",
            "imds": f"http://{self.api_ip}:{imds_port}",
            "control": f"http://{self.api_ip}:{ctl_port}",
            # STS answers on the API endpoint (an AWS_ENDPOINT_URL for
            # every service, as the SDKs allow).
            "sts": f"{self.scheme}://{self.api_ip}:{api_port}/",
            "container": f"http://{self.api_ip}:{container_port}",
            "region": self.world.region,
            "access_key": self.access_key, "secret_key": self.secret_key,
            "ca_file": ca, "ssh_user": getpass.getuser(),
            "ssh_key": self.ssh_key, "known_hosts": self.known_hosts,
            "ssh_port": self.ssh_port, "http_port": self.http_port,
            "net": self.net, "account": self.world.account,
            "role": self.imds_conf["role"], "pid": os.getpid(),
            "workdir": self.workdir,
        }
        path = os.path.join(self.workdir, "ready.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.ready, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        log(f"started in {time.monotonic() - t0:.2f}s, api "
            f"{self.ready['endpoint']}, ssh port {self.ssh_port}, "
            f"http port {self.http_port}")
        print(f"ec2sim ready {path}", flush=True)

    def net_loop(self):
        """Bring real listeners in line with the world's state."""
        while not self.stopping.is_set():
            self.net_kick.wait(1.0)
            self.net_kick.clear()
            if self.stopping.is_set():
                return
            with self.world.lock:
                want = [(iid, self.world.instance_desired(inst))
                        for iid, inst in self.world.instances.items()]
                routes = [(aid, self.world.address_target(a))
                          for aid, a in self.world.addresses.items()]
            with self.net_lock:
                for iid, (ssh, http) in want:
                    rt = self.runtimes.get(iid)
                    if rt:
                        rt.apply(ssh, http)
                for aid, target in routes:
                    fw = self.forwarders.get(aid)
                    if fw:
                        fw.set_target(target)

    def shutdown(self):
        self.stopping.set()
        self.net_kick.set()
        self.world.sched.stop()
        with self.net_lock:
            for rt in self.runtimes.values():
                rt.close()
            for fw in self.forwarders.values():
                fw.close()
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()

    # --- request log ------------------------------------------------------
    def log_request(self, entry):
        with self.log_lock:
            self.req_seq += 1
            entry["seq"] = self.req_seq
            self.request_log.append(entry)
            del self.request_log[:-20000]

    # --- the EC2 API ------------------------------------------------------
    def handle_api(self, h):
        rid = str(uuid.uuid4())
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        raw_path, _, raw_query = h.path.partition("?")
        # EC2 takes parameters from the query string and, for POST, from
        # the form body.
        flat = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        if h.command == "POST":
            flat.update(urllib.parse.parse_qsl(
                body.decode("utf-8", "replace"), keep_blank_values=True))
        action = flat.pop("Action", None)
        version = flat.pop("Version", None)
        entry = {"time": self.now(), "action": action, "version": version,
                 "params": {k: v for k, v in flat.items()
                            if k not in HIDDEN_PARAMS},
                 "access_key": credential_access_key(h.headers),
                 "request_id": rid, "status": None, "code": None}
        if action in sim_sts.ACTIONS:
            self.handle_sts(h, action, version, flat, body, raw_path,
                            raw_query, entry, rid)
            return
        try:
            ak, kind = verify(h.command, self.scheme, raw_path, raw_query,
                              h.headers, body, self.creds,
                              self.world.region,
                              self.now() if self.skew_check
                              else _signed_time(h.headers))
            entry["access_key"] = ak
            entry["credential_kind"] = kind
            if not action:
                raise ApiError("MissingAction",
                               "The request must contain the parameter "
                               "Action")
            if action not in self.model.operations:
                raise ApiError("InvalidAction",
                               f"The action {action} is not valid for this "
                               f"web service.")
            if version is None:
                raise ApiError("MissingParameter",
                               "The request must contain the parameter "
                               "Version")
            if version != API_VERSION:
                raise ApiError("NoSuchVersion",
                               f"The requested version ({version}) of "
                               f"service AmazonEC2 does not exist")
            op = self.model.operation(action)
            p = self.model.parse_input(op, flat)
            latency, rule = self.faults.take(action, flat,
                                             dry=bool(p.get("DryRun")))
            if latency:
                self.stopping.wait(latency)
            after = None
            if rule and rule["kind"] in AFTER_KINDS:
                after, rule = rule, None
            if rule:
                if self.apply_fault(h, rule, entry):
                    return
            if not self.policy.allowed(action, ak):
                raise ApiError("UnauthorizedOperation",
                               "You are not authorized to perform this "
                               "operation.")
            handler = getattr(self.world, "op_" + action, None)
            if handler is None:
                raise ApiError("UnsupportedOperation",
                               f"ec2sim does not implement {action}.")
            with self.world.lock:
                ctx = {"access_key": ak, "request_id": rid}
                result = self.world.perform(action, handler, p, ctx)
                if p.get("DryRun"):
                    raise ApiError("DryRunOperation",
                                   "Request would have succeeded, but "
                                   "DryRun flag is set.")
                xml = self.model.reply_xml(op, result or {}, rid)
            if after is not None:
                self.fault_after(h, after, entry)
                return
            entry["status"], entry["code"] = 200, "OK"
            self.answer(h, entry, 200, xml)
        except ApiError as e:
            entry["status"], entry["code"] = e.status, e.code
            entry["message"] = e.message
            self.answer(h, entry, e.status,
                        error_xml(e.code, e.message, rid))
        except Exception as e:
            traceback.print_exc()
            entry["status"], entry["code"] = 500, "InternalError"
            entry["message"] = f"ec2sim bug: {e}"
            self.answer(h, entry, 500, error_xml(
                "InternalError", "An internal error has occurred", rid))
        finally:
            if not getattr(h, "logged", False):
                entry["duration"] = round(self.now() - entry["time"], 4)
                self.log_request(entry)

    def handle_sts(self, h, action, version, flat, body, raw_path,
                   raw_query, entry, rid):
        """STS on the same endpoint: its own signing scope ("sts"), its
        own error shape (ErrorResponse), its ExpiredToken."""
        try:
            kind = None
            if action != "AssumeRoleWithWebIdentity":
                now = (self.now() if self.skew_check
                       else _signed_time(h.headers))
                try:
                    ak, kind = verify(h.command, self.scheme, raw_path,
                                      raw_query, h.headers, body,
                                      self.creds, self.world.region, now,
                                      service="sts")
                except ApiError as e:
                    found = self.creds.lookup(entry["access_key"] or "")
                    if (e.code == "RequestExpired" and found
                            and found[2] is not None and now >= found[2]):
                        raise ApiError("ExpiredToken", "The security "
                                       "token included in the request "
                                       "is expired", 400) from None
                    if e.code == "AuthFailure":
                        raise ApiError("InvalidClientTokenId", "The "
                                       "security token included in the "
                                       "request is invalid.", 403) \
                            from None
                    raise
                entry["access_key"] = ak
                entry["credential_kind"] = kind
            if version != sim_sts.STS_VERSION:
                raise ApiError("InvalidAction", f"Could not find "
                               f"operation {action} for version "
                               f"{version}", 400)
            xml = self.sts.handle(action, flat, kind)
            entry["status"], entry["code"] = 200, "OK"
            self.answer(h, entry, 200, xml)
        except ApiError as e:
            status = sim_sts.STATUS.get(e.code, e.status)
            entry["status"], entry["code"] = status, e.code
            entry["message"] = e.message
            self.answer(h, entry, status,
                        sim_sts.error_xml(e.code, e.message, rid))
        except Exception as e:
            traceback.print_exc()
            entry["status"], entry["code"] = 500, "InternalFailure"
            entry["message"] = f"ec2sim bug: {e}"
            self.answer(h, entry, 500, sim_sts.error_xml(
                "InternalFailure", "internal error", rid))

    def answer(self, h, entry, status, body):
        """Logs the request, then replies: a client that has its answer
        finds the request in /requests (logging after the reply raced
        with tests reading the log as soon as their call returned). A
        logged entry is never changed again: /requests may be reading
        it."""
        entry["duration"] = round(self.now() - entry["time"], 4)
        self.log_request(entry)
        h.logged = True
        self.send(h, status, body)

    def apply_fault(self, h, rule, entry):
        """Raise the fault's error, or drop/hang; True when handled."""
        k = rule["kind"]
        if k == "throttle":
            raise ApiError("RequestLimitExceeded", "Request limit exceeded.")
        if k == "error500":
            raise ApiError("InternalError",
                           "An internal error has occurred")
        if k == "error503":
            raise ApiError("Unavailable",
                           "The service is unavailable. Please try again "
                           "shortly.")
        if k == "error":
            raise ApiError(rule["code"], rule.get("message") or
                           "Injected by ec2sim", rule.get("status"))
        if k == "drop":
            entry["status"], entry["code"] = 0, "dropped"
            h.close_connection = True
            h.drop = True
            return True
        if k == "hang":
            entry["status"], entry["code"] = 0, "hung"
            # Logged now: a test looks while the client still waits.
            entry["duration"] = 0
            self.log_request(entry)
            h.logged = True
            self.stopping.wait(rule["seconds"])
            h.close_connection = True
            h.drop = True
            return True
        return False

    def fault_after(self, h, rule, entry):
        """The action happened; its reply is lost or becomes a 500."""
        entry["done"] = True
        if rule["kind"] == "drop_after":
            entry["status"], entry["code"] = 0, "dropped_after"
            h.close_connection = True
            h.drop = True
            return
        entry["status"], entry["code"] = 500, "InternalError"
        entry["message"] = "carried out, then answered 500"
        self.answer(h, entry, 500, error_xml(
            "InternalError", "An internal error has occurred",
            entry["request_id"]))

    def send(self, h, status, body):
        try:
            h.send_response(status)
            h.send_header("Content-Type", "text/xml;charset=UTF-8")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:
            # The client is gone (killed, timed out): what the action
            # did stands and is logged once; only the reply is lost.
            h.close_connection = True


def _signed_time(headers):
    # With the clock check off, the sim pretends its clock agrees.
    v = headers.get("X-Amz-Date")
    if v:
        import calendar
        return calendar.timegm(time.strptime(v, "%Y%m%dT%H%M%SZ"))
    return time.time()


class _Base(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.server.sim.now(), usegmt=True)


class ApiHandler(_Base):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEC2"
    sys_version = ""

    def _handle(self):
        # Per request: a kept-alive connection reuses this handler.
        self.drop = False
        self.logged = False
        self.server.sim.handle_api(self)
        if self.drop:
            import struct
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
            except OSError:
                pass

    do_POST = _handle
    do_GET = _handle


class ImdsHandler(_Base):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"

    def _send(self, code, body, ctype="text/plain", extra=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _fault(self):
        sim = self.server.sim
        f = sim.imds_fault
        if f == "hang":
            sim.stopping.wait(3600)
            self.close_connection = True
            return True
        if f == "error500":
            self._send(500, "Internal Server Error\n")
            return True
        return False

    def do_PUT(self):
        sim = self.server.sim
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self._fault():
            return
        if self.path != "/latest/api/token":
            self._send(404, "Not Found\n")
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden\n")
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
            assert 1 <= ttl <= 21600
        except (TypeError, ValueError, AssertionError):
            self._send(400, "Bad Request\n")
            return
        token = "AQAEA" + uuid.uuid4().hex + uuid.uuid4().hex
        sim.imds_tokens[token] = time.monotonic() + ttl
        self._send(200, token, extra=(
            ("X-aws-ec2-metadata-token-ttl-seconds", str(ttl)),))

    def do_GET(self):
        sim = self.server.sim
        if self._fault():
            return
        token = self.headers.get("X-aws-ec2-metadata-token")
        exp = sim.imds_tokens.get(token or "")
        if exp is None or exp < time.monotonic():
            # IMDSv2 only (HttpTokens=required): no v1 access.
            self._send(401, "Unauthorized\n")
            return
        c = sim.imds_conf
        role = c["role"]
        path = self.path.split("?")[0]
        md = {
            "/latest/meta-data/instance-id": c["instance_id"],
            "/latest/meta-data/ami-id": c["ami"],
            "/latest/meta-data/instance-type": c["instance_type"],
            "/latest/meta-data/local-ipv4": sim.api_ip,
            "/latest/meta-data/placement/availability-zone": c["az"],
            "/latest/meta-data/placement/region": sim.world.region,
            "/latest/meta-data/iam/security-credentials/": role,
            "/latest/meta-data/iam/security-credentials": role,
        }
        if path in ("/latest/meta-data/", "/latest/meta-data"):
            self._send(200, "ami-id\niam/\ninstance-id\ninstance-type\n"
                            "local-ipv4\nplacement/")
        elif path in md:
            self._send(200, md[path])
        elif path == f"/latest/meta-data/iam/security-credentials/{role}":
            self._send(200, json.dumps(sim.creds.role_credentials(),
                                       indent=2))
        elif path == "/latest/meta-data/iam/info":
            self._send(200, json.dumps({
                "Code": "Success",
                "InstanceProfileArn": f"arn:aws:iam::{sim.world.account}:"
                                      f"instance-profile/{role}"}))
        elif path == "/latest/dynamic/instance-identity/document":
            self._send(200, json.dumps({
                "accountId": sim.world.account, "region": sim.world.region,
                "availabilityZone": c["az"],
                "instanceId": c["instance_id"], "imageId": c["ami"],
                "instanceType": c["instance_type"],
                "privateIp": sim.api_ip}), "application/json")
        else:
            self._send(404, "Not Found\n")


class ContainerHandler(_Base):
    """The ECS/EKS container credentials agent."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        sim = self.server.sim
        path = self.path.split("?")[0]
        status, obj = sim.sts.container(path,
                                        self.headers.get("Authorization"))
        sim.log_request({
            "time": sim.now(), "action": "ContainerCredentials",
            "params": {"path": path}, "request_id": str(uuid.uuid4()),
            "access_key": (obj or {}).get("AccessKeyId"),
            "status": status or 0,
            "code": "OK" if status == 200 else
            (obj or {}).get("code", "hung")})
        if status is None:
            self.close_connection = True
            return
        sim_sts.reply_json(self, status, obj)


class ControlHandler(_Base):
    protocol_version = "HTTP/1.1"

    def _send(self, code, obj):
        data = (json.dumps(obj, indent=1, default=str) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if not n:
            return {}
        return json.loads(self.rfile.read(n))

    def do_GET(self):
        self._route("GET", {})

    def do_DELETE(self):
        self._route("DELETE", {})

    def do_POST(self):
        try:
            body = self._body()
        except ValueError as e:
            self._send(400, {"error": f"bad JSON: {e}"})
            return
        self._route("POST", body)

    def _route(self, method, body):
        sim = self.server.sim
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = [p for p in url.path.split("/") if p]
        try:
            code, out = control(sim, method, parts, q, body)
        except KeyError as e:
            code, out = 404, {"error": f"not found: {e}"}
        except (ValueError, TypeError) as e:
            code, out = 400, {"error": str(e)}
        self._send(code, out)


INSTANCE_FAULTS = ("http_down", "ssh_down", "blackhole", "status_impaired",
                   "instance_impaired", "http_down_with_data", "os_hung")


def control(sim, method, parts, q, body):
    w = sim.world
    head = parts[0] if parts else ""
    arg = parts[1] if len(parts) > 1 else None
    if head == "state" and method == "GET":
        with w.lock:
            st = w.view()
        st["faults"] = sim.faults.list()
        st["clock"] = {"offset": sim.clock_offset, "check": sim.skew_check}
        st["credentials"] = sim.creds.describe()
        st["ready"] = sim.ready
        return 200, st
    if head == "requests":
        if method == "DELETE":
            with sim.log_lock:
                sim.request_log = []
            return 200, {"ok": True}
        since = int(q.get("since", 0))
        with sim.log_lock:
            out = [e for e in sim.request_log if e["seq"] > since]
        if q.get("action"):
            out = [e for e in out if e["action"] == q["action"]]
        return 200, out
    if head == "events":
        with sim.events_lock:
            return 200, list(sim.events)
    if head == "faults":
        if method == "POST":
            return 200, sim.faults.add(body)
        if method == "DELETE":
            sim.faults.clear()
            return 200, {"ok": True}
        return 200, sim.faults.list()
    if head == "instance" and arg and parts[2:] == ["cut"]:
        # The instance's servers drop these client addresses (a test
        # world facility, not AWS behaviour); DELETE or [] undoes it.
        with w.lock:
            ip = w.instances[arg].ip
        if method == "POST":
            srcs = body.get("sources")
            if not isinstance(srcs, list) or not all(
                    isinstance(s, str) for s in srcs):
                raise ValueError('body must be {"sources": ["127.0.0.9"]}')
            for s in srcs:
                try:
                    socket.inet_pton(socket.AF_INET6 if ":" in s
                                     else socket.AF_INET, s)
                except OSError:
                    raise ValueError(f"{s!r} is not an IP address")
            sim.cut.set(ip, srcs)
            sim.event(f"instance {arg}: cut {sorted(srcs)}")
        elif method == "DELETE":
            sim.cut.set(ip, [])
            sim.event(f"instance {arg}: cut []")
        return 200, sim.cut.view(ip)
    if head == "instance" and arg:
        with w.lock:
            inst = w.instances[arg]
            if method == "POST":
                if "fault" in body:
                    f = body["fault"]
                    names = [] if f in (None, "", "none") else (
                        ["http_down", "ssh_down"] if f == "both"
                        else f.split(",") if isinstance(f, str) else f)
                    for n in names:
                        if n not in INSTANCE_FAULTS:
                            raise ValueError(
                                f"instance fault {n!r} unknown; one of "
                                f"{INSTANCE_FAULTS} or both/none")
                    inst.faults = set(names)
                if "stuck_stopping" in body:
                    inst.stuck_stopping = bool(body["stuck_stopping"])
                sim.event(f"instance {arg}: faults {sorted(inst.faults)}")
                sim.kick_net()
            return 200, w.view_instance(inst)
    if head == "image" and arg:
        # An image's faults go to every instance launched from it (a
        # bad release); {"copy_of": AMI} registers a new image first.
        with w.lock:
            if method == "POST" and "copy_of" in body:
                src = w.images[body["copy_of"]]
                if arg in w.images:
                    raise ValueError(f"image {arg} exists")
                w.images[arg] = copy.copy(src)
                w.images[arg].id = arg
                w.images[arg].name = body.get("name", arg)
                w.images[arg].tags = {}
                w.images[arg].mappings = [dict(m) for m in src.mappings]
            im = w.images[arg]
            if method == "POST" and "faults" in body:
                for n in body["faults"]:
                    if n not in INSTANCE_FAULTS:
                        raise ValueError(
                            f"image fault {n!r} unknown; one of "
                            f"{INSTANCE_FAULTS}")
                im.faults = set(body["faults"])
                sim.event(f"image {arg}: faults {sorted(im.faults)}")
            if method == "POST" and "emit_keys_to_console" in body:
                # cloud-init's emit_keys_to_console: false in the image.
                im.emit_keys = bool(body["emit_keys_to_console"])
                sim.event(f"image {arg}: emit_keys_to_console "
                          f"{im.emit_keys}")
            return 200, {"id": im.id, "name": im.name, "state": im.state,
                         "faults": sorted(getattr(im, "faults", ())),
                         "emit_keys_to_console": getattr(im, "emit_keys",
                                                         True)}
    if head == "volume" and arg:
        with w.lock:
            v = w.volumes[arg]
            if method == "POST":
                if "data" in body:
                    v.data = str(body["data"])
                if "detach_busy" in body:
                    v.detach_busy = bool(body["detach_busy"])
                if "detach_stuck" in body:
                    v.detach_stuck = bool(body["detach_stuck"])
            return 200, w.view_volume(v)
    if head == "address" and arg:
        with w.lock:
            return 200, w.view_address(w.addresses[arg])
    if head == "snapshot" and arg:
        with w.lock:
            s = w.snapshots[arg]
            return 200, {"id": s.id, "state": s.state, "data": s.data,
                         "volume": s.volume}
    if head == "az" and arg:
        with w.lock:
            z = w.azs[arg]
            if method == "POST" and ("impaired" in body or
                                     "state" in body):
                state = body.get("state") or (
                    "impaired" if body["impaired"] else "available")
                w.set_az_state(arg, state)
                sim.event(f"az {arg}: {z.state}")
                sim.kick_net()
            return 200, {"name": z.name, "impaired": z.impaired,
                         "state": z.state}
    if head == "delays":
        with w.lock:
            if method == "POST":
                for k, v in body.items():
                    if k not in w.delays:
                        raise ValueError(f"unknown delay {k!r}; known: "
                                         f"{sorted(w.delays)}")
                    w.delays[k] = sim_timing.check(k, v)
            return 200, dict(w.delays)
    if head == "timing":
        with w.lock:
            if method == "POST":
                prof, _ = sim_timing.delays(body.get("profile", ""),
                                            DEFAULT_DELAYS)
                w.delays.update(prof)
                sim.event(f"timing profile {body['profile']}")
            return 200, {"profiles": sim_timing.names(),
                         "delays": dict(w.delays)}
    if head == "model":
        # {"refuse": ["StopInstances.SkipOsShutdown"]}: an endpoint
        # that predates these newer members (sim_overlay).
        if method == "POST" and "refuse" in body:
            sim.model.refuse(body["refuse"] or [])
            sim.event(f"model: refusing {sim.model.refused}")
        return 200, {"overlay": sim_overlay.names(),
                     "refused": list(sim.model.refused)}
    if head == "clock":
        if method == "POST":
            if "offset" in body:
                sim.clock_offset = float(body["offset"])
            if "check" in body:
                sim.skew_check = bool(body["check"])
        return 200, {"offset": sim.clock_offset, "check": sim.skew_check,
                     "now": sim.now()}
    if head == "policy":
        if method == "POST":
            sim.policy = Policy(body)
        return 200, sim.policy.doc
    if head == "sts":
        return 200, sim.sts.control(body if method == "POST" else {})
    if head == "imds":
        if method == "POST":
            if "lifetime" in body:
                sim.creds.set_lifetime(body["lifetime"])
            if body.get("rotate"):
                sim.creds.role_credentials(force=True)
            if "fault" in body:
                f = body["fault"]
                if f not in (None, "none", "hang", "error500"):
                    raise ValueError("imds fault: none, hang or error500")
                sim.imds_fault = None if f == "none" else f
        return 200, {"fault": sim.imds_fault,
                     "credentials": sim.creds.describe()}
    raise KeyError("/".join(parts) or "/")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--net", default="127.77")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--policy")
    ap.add_argument("--delays", help="JSON object of delays in seconds "
                    "(a number, or [low, high] drawn per event)")
    ap.add_argument("--timing", choices=sim_timing.names(),
                    help="delay profile: aws draws each delay from the "
                    "ranges of tests/ec2sim/sim_timing.py")
    ap.add_argument("--cred-lifetime", type=float)
    ap.add_argument("--ssh-port", type=int)
    ap.add_argument("--http-port", type=int)
    args = ap.parse_args()
    m = re.match(r"^127\.(\d{1,3})$", args.net)
    if not m or int(m.group(1)) > 255:
        ap.error("--net must be 127.B (a /16 inside 127.0.0.0/8)")
    sim = Sim(args)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sim.start()
    while not done.wait(1.0):
        pass
    log("stopping")
    sim.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
