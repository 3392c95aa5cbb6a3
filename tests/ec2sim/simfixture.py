"""pytest-side handle on an ec2sim process.

    import sys; sys.path.insert(0, "<repo>/tests/ec2sim")
    from simfixture import Ec2Sim

    with Ec2Sim("basic", tmp_path / "sim") as sim:
        subprocess.run([...], env={**os.environ, **sim.env()})
        assert sim.instance("i-0aaaaaaaaaaaaaaa1")["state"] == "running"

`scenario` is a path or the name of a file in tests/ec2sim/scenarios.
net=None picks a free /16 in 127.0.0.0/8 so parallel tests never collide.
Options: policy=PATH, delays={...}, timing="aws", cred_lifetime=S,
port=N, ssh_port=N, http_port=N, start_timeout=S.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
CLAIM_PORT = 65001
EXIT_NET_BUSY = 3

# Well-known IDs of scenarios/basic.json.
BASIC = {
    "instance": "i-0aaaaaaaaaaaaaaa1",
    "image": "ami-0aaaaaaaaaaaaaaa1",
    "root_volume": "vol-0aaaaaaaaaaaaaaa1",
    "volumes": {"/dev/sdf": "vol-0daaaaaaaaaaaaaa1",
                "/dev/sdg": "vol-0daaaaaaaaaaaaaa2"},
    "snapshots": {"vol-0daaaaaaaaaaaaaa1": "snap-0daaaaaaaaaaaaaa1",
                  "vol-0daaaaaaaaaaaaaa2": "snap-0daaaaaaaaaaaaaa2"},
    "eip": "eipalloc-0aaaaaaaaaaaaaaa1",
    "spare_eip": "eipalloc-0aaaaaaaaaaaaaaa2",
    "subnets": {"us-east-1a": "subnet-0aaaaaaaaaaaaaaa1",
                "us-east-1b": "subnet-0bbbbbbbbbbbbbbb1",
                "us-east-1c": "subnet-0ccccccccccccccc1"},
    "security_group": "sg-0aaaaaaaaaaaaaaa1",
    "key_name": "prod-key",
    "instance_profile": "prod-web-role",
    "az": "us-east-1a",
    "account": "123456789012",
    # Another account's public snapshots, newer than ours, that match
    # failoverd's filters and tags (a lookup without Owner=self).
    "public_snapshots": {"vol-0daaaaaaaaaaaaaa1": "snap-0f0000000000000f1",
                         "vol-0daaaaaaaaaaaaaa2": "snap-0f0000000000000f2"},
}


def _net_free(net):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((f"{net}.0.1", CLAIM_PORT))
        return True
    except OSError:
        return False
    finally:
        s.close()


def scenario_path(scenario):
    if os.path.exists(str(scenario)):
        return os.path.abspath(str(scenario))
    return os.path.join(HERE, "scenarios", f"{scenario}.json")


class Ec2SimError(RuntimeError):
    pass


class Ec2Sim:
    def __init__(self, scenario, workdir, net=None, tls=False, **opts):
        self.scenario = scenario_path(scenario)
        self.workdir = os.path.abspath(str(workdir))
        self.want_net = net
        self.tls = tls
        self.opts = opts
        self.proc = None
        self.ready = None

    # -- process -------------------------------------------------------
    def _args(self, net):
        a = [PYTHON, os.path.join(HERE, "ec2sim.py"), "--scenario",
             self.scenario, "--workdir", self.workdir, "--net", net]
        if self.tls:
            a.append("--tls")
        o = self.opts
        if o.get("port"):
            a += ["--port", str(o["port"])]
        if o.get("policy"):
            a += ["--policy", str(o["policy"])]
        if o.get("timing"):
            a += ["--timing", o["timing"]]
        if o.get("delays"):
            a += ["--delays", json.dumps(o["delays"])]
        if o.get("cred_lifetime"):
            a += ["--cred-lifetime", str(o["cred_lifetime"])]
        if o.get("ssh_port"):
            a += ["--ssh-port", str(o["ssh_port"])]
        if o.get("http_port"):
            a += ["--http-port", str(o["http_port"])]
        return a

    def _candidates(self):
        if self.want_net:
            yield self.want_net
            return
        base = os.getpid()
        for i in range(100):
            net = f"127.{100 + (base + i) % 100}"
            if _net_free(net):
                yield net

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        ready_path = os.path.join(self.workdir, "ready.json")
        timeout = self.opts.get("start_timeout", 15)
        for net in self._candidates():
            if os.path.exists(ready_path):
                os.unlink(ready_path)
            self.log_path = os.path.join(self.workdir, "ec2sim.log")
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                self._args(net), stdout=subprocess.PIPE, stderr=logf,
                stdin=subprocess.DEVNULL, start_new_session=True)
            logf.close()
            line = b""
            deadline = time.monotonic() + timeout
            # The one line "ec2sim ready PATH" on stdout says it is up.
            import selectors
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            eof = False
            while time.monotonic() < deadline:
                if sel.select(0.1):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        eof = True
                        break
                    line += chunk
                    if b"\n" in line:
                        break
            sel.close()
            if eof:
                # stdout closed: the process is on its way out.
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if line.startswith(b"ec2sim ready "):
                with open(line.split(b" ", 2)[2].strip()) as f:
                    self.ready = json.load(f)
                self.net = net
                return self
            rc = self.proc.poll()
            if rc == EXIT_NET_BUSY and not self.want_net:
                self.proc.wait()
                continue
            self.stop()
            raise Ec2SimError(f"ec2sim did not start (exit {rc}); see "
                              f"{self.log_path}:\n{self._log_tail()}")
        raise Ec2SimError("no free 127.x net for ec2sim")

    def _log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def stop(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # Anything left in the sim's session (an sshd of a sim that was
        # killed) goes with it.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.stdout:
            p.stdout.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- ready.json ----------------------------------------------------
    def __getattr__(self, name):
        ready = self.__dict__.get("ready")
        if ready is not None and name in ready:
            return ready[name]
        raise AttributeError(name)

    def env(self):
        e = {"AWS_ACCESS_KEY_ID": self.access_key,
             "AWS_SECRET_ACCESS_KEY": self.secret_key,
             "AWS_REGION": self.region,
             "AWS_DEFAULT_REGION": self.region,
             "AWS_ENDPOINT_URL_EC2": self.endpoint,
             "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds,
             "AWS_CONFIG_FILE": os.devnull,
             "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        if self.ca_file:
            e["AWS_CA_BUNDLE"] = self.ca_file
        return e

    # -- control API -----------------------------------------------------
    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.control + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise Ec2SimError(f"control {method} {path}: {e.code} "
                              f"{e.read().decode(errors='replace')}")

    def state(self):
        return self._call("GET", "/state")

    def requests(self, action=None, since=0):
        q = f"?since={since}" + (f"&action={action}" if action else "")
        return self._call("GET", "/requests" + q)

    def clear_requests(self):
        return self._call("DELETE", "/requests")

    def events(self):
        return self._call("GET", "/events")

    def fault(self, **kw):
        """kind=throttle|error500|error503|error|drop|hang|latency|
        drop_after|error500_after, action='*'|Name, count=N (None:
        forever), latency=S, seconds=S, code/message/status for
        kind=error, match={param: value} (only requests carrying them,
        e.g. {"Filter.1.Name": "client-token"})."""
        return self._call("POST", "/faults", kw)

    def faults(self):
        return self._call("GET", "/faults")

    def clear_faults(self):
        return self._call("DELETE", "/faults")

    def instance(self, iid):
        return self._call("GET", f"/instance/{iid}")

    def instance_fault(self, iid, fault="none", **kw):
        """fault: none|http_down|ssh_down|both|blackhole|os_hung|
        status_impaired|instance_impaired, or a comma list;
        stuck_stopping=bool."""
        return self._call("POST", f"/instance/{iid}", {"fault": fault, **kw})

    def cut(self, iid, sources):
        """The instance's servers drop connections from these client
        addresses (a test-world facility); [] undoes it. Returns
        {"sources": [...], "seen": {client: {"http": n, "ssh": n,
        "http_cut": n, "ssh_cut": n}}}."""
        return self._call("POST", f"/instance/{iid}/cut",
                          {"sources": list(sources)})

    def uncut(self, iid):
        return self._call("DELETE", f"/instance/{iid}/cut")

    def sources(self, iid):
        """What cut() returns, without changing anything."""
        return self._call("GET", f"/instance/{iid}/cut")

    def set_instance(self, iid, **kw):
        return self._call("POST", f"/instance/{iid}", kw)

    def image(self, ami, **kw):
        """copy_of=AMI registers ami as a copy; faults=[...] go to every
        instance launched from it (http_down, http_down_with_data...);
        emit_keys_to_console=False: its instances never print their SSH
        host keys on the console."""
        return self._call("POST" if kw else "GET", f"/image/{ami}",
                          kw or None)

    def volume(self, vid):
        return self._call("GET", f"/volume/{vid}")

    def set_volume(self, vid, **kw):
        """data=STR, detach_busy=bool, detach_stuck=bool."""
        return self._call("POST", f"/volume/{vid}", kw)

    def snapshot(self, sid):
        return self._call("GET", f"/snapshot/{sid}")

    def address(self, alloc_id):
        return self._call("GET", f"/address/{alloc_id}")

    def sts_control(self, **kw):
        """STS and the container agent: lifetime (s) of what they issue,
        external_id, web_token, container_token, container_fault."""
        return self._call("POST", "/sts", kw)

    def set_delays(self, **kw):
        """KEY=seconds, or KEY=[low, high] drawn per event."""
        return self._call("POST", "/delays", kw)

    def set_timing(self, profile):
        """A timing profile of sim_timing.py ("aws"), or "default"."""
        return self._call("POST", "/timing", {"profile": profile})

    def refuse_members(self, *names):
        """The endpoint predates these newer members (sim_overlay),
        e.g. "StopInstances.SkipOsShutdown"; none: knows them all."""
        return self._call("POST", "/model", {"refuse": list(names)})

    def impair_az(self, az, impaired=True):
        return self._call("POST", f"/az/{az}", {"impaired": impaired})

    def set_az_state(self, az, state):
        """available, information, impaired, unavailable, constrained
        (or ok)."""
        return self._call("POST", f"/az/{az}", {"state": state})

    def clock(self, **kw):
        """offset=S (the sim's clock runs S seconds ahead), check=bool."""
        return self._call("POST", "/clock", kw)

    def set_policy(self, doc):
        return self._call("POST", "/policy", doc)

    def imds_control(self, **kw):
        """rotate=True, lifetime=S, fault=none|hang|error500."""
        return self._call("POST", "/imds", kw)

    # -- conveniences for tests --------------------------------------------
    def host(self, ip):
        """known_hosts / ssh host spelling for an address."""
        return ip if self.ssh_port == 22 else f"[{ip}]:{self.ssh_port}"

    def ssh_argv(self, ip, *command, known_hosts=None, timeout=5):
        return ["ssh", "-i", self.ssh_key, "-p", str(self.ssh_port),
                "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={timeout}", "-o", "LogLevel=ERROR",
                f"{self.ssh_user}@{ip}", *command]

    def url(self, ip, path="/health"):
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{ip}{port}{path}"

    def wait(self, pred, timeout=10, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(interval)

    def wait_instance_state(self, iid, state, timeout=10):
        return self.wait(lambda: self.instance(iid)["state"] == state,
                         timeout, what=f"{iid} {state}")
