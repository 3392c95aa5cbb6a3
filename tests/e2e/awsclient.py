"""ec2call and a bare ec2sim for the tests of the AWS client itself.

test_aws.py (the EC2 client) and test_credchain.py (the credential
sources) drive the C client through tests/ec2call against an ec2sim of
their own, with no daemon: what they share is here, not in one of them.
"""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fodtest import BUILD, SRCDIR  # noqa: E402

EC2CALL = os.path.join(BUILD, "ec2call")
EC2SIM = os.path.join(SRCDIR, "tests", "ec2sim", "ec2sim.py")
SCENARIO = os.path.join(SRCDIR, "tests", "ec2sim", "scenarios",
                        "basic.json")
PY = "/usr/bin/python3"
EXIT_NET_BUSY = 3

PROD = "i-0aaaaaaaaaaaaaaa1"
AMI = "ami-0aaaaaaaaaaaaaaa1"
SUBNET_B = "subnet-0bbbbbbbbbbbbbbb1"
SG = "sg-0aaaaaaaaaaaaaaa1"
VOL_DB = "vol-0daaaaaaaaaaaaaa1"
SNAP_DB = "snap-0daaaaaaaaaaaaaa1"
SNAP_UPLOADS = "snap-0daaaaaaaaaaaaaa2"
EIP_SPARE = "eipalloc-0aaaaaaaaaaaaaaa2"


class Sim:
    """ec2sim as a child process, driven through its control API."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        for n in range(79, 120):
            wd = os.path.join(workdir, f"sim{n}")
            os.makedirs(wd)
            # These check the C client's signing and parsing, one call
            # after another; Describe's lag after a mutation has its own
            # tests (test_consistency.py).
            proc = subprocess.Popen(
                [PY, EC2SIM, "--scenario", SCENARIO, "--workdir", wd,
                 "--net", f"127.{n}", "--delays", '{"describe_lag": 0}'],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            line = proc.stdout.readline().decode()
            while line and "ec2sim ready" not in line:
                line = proc.stdout.readline().decode()
            if line:
                self.proc = proc
                break
            if proc.wait() != EXIT_NET_BUSY:
                raise RuntimeError(f"ec2sim failed to start in {wd}")
        if self.proc is None:
            raise RuntimeError("no free 127.x net for ec2sim")
        with open(os.path.join(wd, "ready.json")) as f:
            self.ready = json.load(f)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.ready["control"] + path,
                                     data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def fault(self, **rule):
        return self.control("POST", "/faults", rule)

    def requests(self, action=None):
        q = f"?action={action}" if action else ""
        return self.control("GET", "/requests" + q)

    def env(self, static=True):
        """The environment for ec2call: never anything but this sim."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_")}
        env.update({
            "AWS_REGION": self.ready["region"],
            "AWS_ENDPOINT_URL": self.ready["endpoint"],
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.ready["imds"],
            "AWS_SHARED_CREDENTIALS_FILE":
                os.path.join(self.workdir, "no-credentials"),
            "AWS_CONFIG_FILE": os.path.join(self.workdir, "no-config"),
        })
        if static:
            env["AWS_ACCESS_KEY_ID"] = self.ready["access_key"]
            env["AWS_SECRET_ACCESS_KEY"] = self.ready["secret_key"]
        return env


def ec2call(env, *args, timeout=60):
    """Runs ec2call; returns (exit status, JSON lines, stderr)."""
    p = subprocess.run([EC2CALL, *args], env=env, capture_output=True,
                       timeout=timeout)
    out = [json.loads(x) for x in p.stdout.decode().splitlines() if x]
    return p.returncode, out, p.stderr.decode()


@contextlib.contextmanager
def bare_sim(prefix):
    """A Sim of its own in a fresh directory, removed afterwards: what
    each test module's `sim` fixture yields."""
    if not os.access(EC2CALL, os.X_OK):
        raise RuntimeError(f"{EC2CALL} is not built")
    workdir = tempfile.mkdtemp(prefix=prefix)
    s = Sim(workdir)
    try:
        yield s
    finally:
        s.close()
        shutil.rmtree(workdir, ignore_errors=True)
