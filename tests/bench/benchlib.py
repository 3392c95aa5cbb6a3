"""What the benchmarks share: where things are, the loopback targets, a
failoverd run from a generated configuration, the CPU, RSS and wakeups
of a process read from /proc, statistics, and the figures file.

Benchmarks print figures and never assert: a figure that misses its
target is reported as missed, with the run's other figures beside it."""
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SRCDIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
import loopguard  # noqa: E402
BUILD = os.environ.get("FOD_BENCH_BUILD") or os.path.join(SRCDIR, "build")
OUT = os.path.join(BUILD, "bench")
FAILOVERD = os.path.join(BUILD, "failoverd")
FAILOVERCTL = os.path.join(BUILD, "failoverctl")
TICK = os.sysconf("SC_CLK_TCK")
HTTP_PORT = 80

# Nothing may reach AWS: every endpoint is a dead loopback port.
ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "AKIDFODBENCH",
    "AWS_SECRET_ACCESS_KEY": "fodbench-not-a-secret",
    "AWS_REGION": "us-east-1",
}


def addresses(n, net=60):
    """n loopback addresses 127.<net>.x.1-250 (no .0 or .255)."""
    return [f"127.{net}.{i // 250}.{i % 250 + 1}" for i in range(n)]


# -- statistics --------------------------------------------------------

def pct(values, p):
    """The p-th percentile (nearest rank) of values; None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(values):
    return statistics.median(values) if values else None


# -- processes ---------------------------------------------------------

class ProcStat:
    """CPU, memory and wakeups of a running process, from /proc."""

    def __init__(self, pid):
        self.pid = pid

    def cpu(self):
        """(seconds on CPU, precise: schedstat of every thread;
        user+sys seconds from /proc/<pid>/stat, in clock ticks)."""
        ns = 0
        try:
            for t in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{t}/schedstat") as f:
                    ns += int(f.read().split()[0])
        except OSError:
            pass
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ns / 1e9, ticks / TICK

    def status(self):
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
        return out

    def rss_mb(self):
        st = self.status()
        return (int(st["VmRSS"].split()[0]) / 1024.0,
                int(st["VmHWM"].split()[0]) / 1024.0)

    def switches(self):
        """Voluntary context switches: each is a sleep that ended, so a
        wakeup; involuntary ones are preemptions, not wakeups."""
        st = self.status()
        return (int(st["voluntary_ctxt_switches"]),
                int(st["nonvoluntary_ctxt_switches"]))


def build_type():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip() or "(none)"
    except OSError:
        pass
    return "?"


# -- the loopback HTTP targets -----------------------------------------

class Targets:
    """bench_target listening on addrs:port; mode per address."""

    def __init__(self, addrs, port=HTTP_PORT, modes=None):
        self.addrs = list(addrs)
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "bench_target"), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        modes = modes or {}
        self.proc.stdin.write("".join(
            f"L {a} {modes.get(a, 'ok')}\n" for a in self.addrs) + "Y\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bench_target did not start")

    def set_mode(self, addr, mode):
        """Returns the wall-clock time the change took effect."""
        self.proc.stdin.write(f"M {addr} {mode}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline().split()[1])

    def served(self):
        self.proc.stdin.write("S\n")
        self.proc.stdin.flush()
        f = self.proc.stdout.readline().split()
        return int(f[1]), int(f[3])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- failoverd ---------------------------------------------------------

def http_probe(addr, interval=1.0, timeout=0.5, fall=3, rise=2,
               port=HTTP_PORT):
    return (f'{{ name = "http"; type = "http"; address = "{addr}"; '
            f'port = {port}; path = "/"; interval = {interval}; '
            f'timeout = {timeout}; fall = {fall}; rise = {rise}; }}')


def service_conf(i, probes, extra=""):
    return (f'{{ name = "svc{i}"; eip_allocation_id = "eipalloc-{i:017x}";'
            f' launch = {{ ami = "ami-0123456789abcdef0"; '
            f'instance_type = "t3.micro"; }};'
            f' policy = {{ auto_failover = false; }};{extra}'
            f' probes = ( {", ".join(probes)} ); }}')


class Daemon:
    """failoverd on a generated configuration, its log on a pipe.

    With keep_lines=False, lines are only matched as they arrive (a
    10,000-service debug log is too much to keep)."""

    def __init__(self, services, debug=False, workdir=None, head="",
                 env=None, aws='{ region = "us-east-1"; }', dead_aws=True,
                 logfile=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="fodbench.")
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.sock = os.path.join(self.dir, "control.sock")
        self.conf = os.path.join(self.dir, "failoverd.conf")
        with open(self.conf, "w") as f:
            f.write(f'state_dir = "{self.dir}/state";\n'
                    f'control_socket = "{self.sock}";\n'
                    f'aws = {aws};\n'
                    'alerts = { rate_limit = 0; };\n' + head +
                    "services = (\n" + ",\n".join(services) + "\n);\n")
        args = [FAILOVERD, "-c", self.conf, "--log-stderr"]
        if debug:
            args.append("-d")
        full_env = dict(os.environ)
        if dead_aws:
            full_env.update(ENV)
        full_env.update(env or {})
        loopguard.check_file(full_env, self.conf)
        # A log file for a daemon nobody reads while it runs: a full
        # pipe would stop it.
        self.logfile = logfile
        err = open(logfile, "w") if logfile else subprocess.PIPE
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=err, env=full_env)
        if logfile:
            err.close()
        self.stat = ProcStat(self.proc.pid)
        self._partial = b""
        self.pending = []

    def read(self, timeout):
        """Lines that arrived within timeout seconds (maybe none)."""
        if self.logfile:
            time.sleep(timeout)
            return []
        r, _, _ = select.select([self.proc.stderr], [], [], timeout)
        if not r:
            return []
        chunk = os.read(self.proc.stderr.fileno(), 1 << 20)
        if not chunk:
            if self.proc.poll() is not None:
                raise RuntimeError("failoverd exited: rc=%s"
                                   % self.proc.returncode)
            return []
        data = self._partial + chunk
        *done, self._partial = data.split(b"\n")
        return [x.decode(errors="replace") for x in done]

    def pump(self, seconds, on_line=None):
        """Reads the log for seconds, giving each line to on_line."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            for line in self.read(min(left, 0.2)):
                if on_line is not None:
                    on_line(line)

    def wait_for(self, pattern, timeout=60.0, on_line=None):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.read(0.2):
                if on_line is not None:
                    on_line(line)
                if rx.search(line):
                    return line
        raise RuntimeError(f"failoverd: no line matching {pattern!r} "
                           f"within {timeout}s")

    def status(self):
        p = subprocess.run([FAILOVERCTL, "-s", self.sock, "status",
                            "--json"], capture_output=True, text=True,
                           timeout=60)
        return json.loads(p.stdout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def log_stamp(line):
    """Wall-clock seconds of a log line "HH:MM:SS.mmm level: ..." (today,
    local time, as log.c writes it)."""
    hms, ms = line.split()[0].split(".")
    lt = time.localtime()
    t = time.mktime(time.strptime(
        time.strftime("%Y-%m-%d ", lt) + hms, "%Y-%m-%d %H:%M:%S"))
    t += int(ms) / 1000.0
    # A line from just before midnight read just after it.
    if t > time.time() + 3600:
        t -= 86400
    return t


# -- figures -----------------------------------------------------------

class Figures:
    """Every figure of a benchmark, printed and written to
    build/bench/<name>.json; rows() feeds run-all's table."""

    def __init__(self, name):
        self.name = name
        self.data = {"benchmark": name, "build_type": build_type(),
                     "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "figures": []}

    def add(self, figure, value, unit="", target=None, met=None, **extra):
        row = {"figure": figure, "value": value, "unit": unit,
               "target": target, "met": met}
        row.update(extra)
        self.data["figures"].append(row)
        return row

    def note(self, key, value):
        self.data[key] = value

    def save(self):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, self.name + ".json")
        with open(path, "w") as f:
            json.dump(self.data, f, indent=1)
        return path

    def rows(self):
        return self.data["figures"]


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            s = f"{v:.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        else:
            s = f"{v:.2f}"
    else:
        s = str(v)
    return s + (" " + unit if unit else "")
