"""Metrics as an on-call team gets them: failoverd writes failoverd.prom
into a textfile directory, Debian's real prometheus-node-exporter serves
it, and the test scrapes node_exporter's /metrics over HTTP, as
Prometheus would, before, during and after a failover against ec2sim."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from fodtest import Daemon, ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402
from conftest import write_conf  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
OLD = BASIC["instance"]
VOLS = BASIC["volumes"]          # device -> volume id
STEPS = ("detect", "fence", "launch", "detach", "attach", "associate",
         "verify", "total")

pytestmark = pytest.mark.skipif(
    not os.access(NODE_EXPORTER, os.X_OK),
    reason="prometheus-node-exporter is not installed "
    "(scripts/lib.sh FOD_DEB_PACKAGES)")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class NodeExporter:
    """node_exporter with only the textfile collector, on loopback."""

    def __init__(self, textfile_dir, workdir):
        self.dir = textfile_dir
        self.log = open(os.path.join(workdir, "node_exporter.log"), "w")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [NODE_EXPORTER, "--collector.disable-defaults",
             "--collector.textfile",
             f"--collector.textfile.directory={textfile_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.scrape_text()
                return
            except OSError:
                if self.proc.poll() is not None or \
                        time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.1)

    def scrape_text(self):
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def scrape(self):
        """{(name, frozenset(labels)): value} of every sample."""
        out = {}
        for line in self.scrape_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(samples, name, **labels):
    """The value of name with exactly these labels, or None."""
    return samples.get((name, frozenset(labels.items())))


def series(samples, name):
    """{labels dict as a sorted tuple: value} of every sample of name."""
    return {tuple(sorted(k[1])): v for k, v in samples.items()
            if k[0] == name}


def calls_ok(samples, action):
    return get(samples, "failoverd_ec2_calls_total", action=action,
               outcome="ok") or 0


def wait_scrape(ne, d, what, cond, timeout=60):
    """Scrapes until cond(samples) holds; the daemon's log keeps flowing."""
    deadline = time.monotonic() + timeout
    while True:
        s = ne.scrape()
        if cond(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(
                f"node_exporter never showed {what} within {timeout}s; "
                "failoverd series:\n" + "\n".join(
                    f"{k[0]}{dict(k[1])} {v}" for k, v in sorted(
                        s.items(), key=str)
                    if k[0].startswith("failoverd_")))
        d.drain(0.2)


@pytest.fixture
def sim(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as s:
        yield s


def add_metrics(tmp_path, sim, textfile_dir, period=1):
    write_conf(str(tmp_path), sim)
    with open(tmp_path / "failoverd.conf", "a") as f:
        f.write(f'metrics = {{ textfile_dir = "{textfile_dir}"; '
                f'period = {period}; }};\n')


def start_with_metrics(tmp_path, sim, textfile_dir, period=1):
    """test_failover's basic world, with metrics on (as its start())."""
    add_metrics(tmp_path, sim, textfile_dir, period)
    e = dict(sim.env())
    e["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    e["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    d = Daemon(str(tmp_path / "failoverd.conf"), env=e)
    d.sock = str(tmp_path / "control.sock")
    return d


def test_failover_is_seen_through_node_exporter(tmp_path, sim):
    prom = tmp_path / "textfile"
    prom.mkdir()
    with NodeExporter(str(prom), str(tmp_path)) as ne, \
            start_with_metrics(tmp_path, sim, str(prom)) as d:
        d.wait_for(r"service web: healthy", timeout=30)
        before = wait_scrape(
            ne, d, "a healthy web whose preflight passed",
            lambda s: get(s, "failoverd_service_verdict", service="web",
                          verdict="healthy") == 1 and
            get(s, "failoverd_preflight_success", service="web") == 1 and
            get(s, "failoverd_probe_checks_total", service="web",
                probe="site") and
            calls_ok(s, "DescribeAddresses") > 0)
        # node_exporter read the file, and read it without complaint.
        assert get(before, "node_textfile_scrape_error") == 0
        assert get(before, "failoverd_service_verdict", service="web",
                   verdict="down") == 0
        assert get(before, "failoverd_probe_state", service="web",
                   probe="site", state="up") == 1
        assert get(before, "failoverd_probe_latency_seconds",
                   service="web", probe="site") > 0
        assert get(before, "failoverd_failover_step", service="web",
                   step="idle") == 1
        assert get(before, "failoverd_failovers_total", service="web",
                   kind="failover", result="completed") == 0
        assert not series(before, "failoverd_last_failover_step_seconds")
        assert get(before, "failoverd_checks_max_in_flight") == 256
        assert get(before, "failoverd_events_total",
                   event="preflight_passed") == 1
        checks = get(before, "failoverd_probe_checks_total",
                     service="web", probe="site")
        described = calls_ok(before, "DescribeInstances")

        sim.instance_fault(OLD, "both")
        during = wait_scrape(
            ne, d, "web down", lambda s: get(
                s, "failoverd_service_verdict", service="web",
                verdict="down") == 1)
        assert get(during, "failoverd_probe_failures_total",
                   service="web", probe="site") >= 2
        assert get(during, "failoverd_probe_state", service="web",
                   probe="site", state="down") == 1
        assert get(during, "failoverd_events_total",
                   event="service_down") == 1

        line = d.wait_for(r"event=failover_completed", timeout=90)
        d.wait_for(r"event=service_recovered", timeout=30)
        after = wait_scrape(
            ne, d, "the failover counted", lambda s: get(
                s, "failoverd_failovers_total", service="web",
                kind="failover", result="completed") == 1 and
            get(s, "failoverd_service_verdict", service="web",
                verdict="healthy") == 1)
        assert get(after, "node_textfile_scrape_error") == 0
        assert get(after, "failoverd_failovers_total", service="web",
                   kind="failover", result="failed") == 0
        assert get(after, "failoverd_last_failover_info", service="web",
                   kind="failover", result="completed") == 1
        assert get(after, "failoverd_failover_step", service="web",
                   step="done") == 1
        # The step timings are the failover_completed event's.
        for step in STEPS:
            v = get(after, "failoverd_last_failover_step_seconds",
                     service="web", step=step)
            assert v is not None, step
            want = float(line.split(f" {step}=", 1)[1].split()[0])
            assert abs(v - want) < 0.0011, (step, v, want)
        crit = get(after, "failoverd_last_failover_critical_path_seconds",
                   service="web")
        total = get(after, "failoverd_last_failover_step_seconds",
                    service="web", step="total")
        assert 0 < crit <= total + 0.001
        assert get(after,
                   "failoverd_last_failover_start_timestamp_seconds",
                   service="web") > 0
        # The EC2 calls the failover made are counted by action.
        for action in ("RunInstances", "StopInstances", "DetachVolume",
                       "AttachVolume", "AssociateAddress"):
            assert calls_ok(after, action) >= 1, action
        assert calls_ok(after, "DescribeInstances") > described
        assert get(after, "failoverd_probe_checks_total", service="web",
                   probe="site") > checks
        assert get(after, "failoverd_events_total",
                   event="failover_completed") == 1
        for name in ("failoverd_ec2_retries_total",
                     "failoverd_ec2_throttles_total"):
            assert get(after, name, action="RunInstances") is not None
        assert get(after, "failoverd_ec2_budget_wait_seconds_total") >= 0
        assert get(after, "failoverd_metrics_write_failures_total") == 0

        # Readable by node_exporter's user whatever the umask, and no
        # temporary file left where the collector looks.
        mode = stat.S_IMODE(os.stat(prom / "failoverd.prom").st_mode)
        assert mode == 0o644, oct(mode)
        assert sorted(os.listdir(prom)) == ["failoverd.prom"]
    # A stopped daemon leaves nothing stale to be scraped.
    assert not (prom / "failoverd.prom").exists()


def test_unwritable_directory_is_logged_once_and_retried(tmp_path, sim):
    prom = tmp_path / "later"
    with start_with_metrics(tmp_path, sim, str(prom)) as d:
        d.wait_for(r"service web: healthy", timeout=30)
        d.wait_for(r"metrics: cannot write .*later/failoverd.prom",
                   timeout=10)
        d.drain(3)
        # Once, not every period; and the service is not affected.
        assert len([ln for ln in d.lines if "metrics: cannot write" in ln
                    ]) == 1
        assert not [ln for ln in d.lines if "event=service_down" in ln]
        prom.mkdir()
        d.wait_for(r"metrics: .*later/failoverd.prom written again",
                   timeout=10)
        with NodeExporter(str(prom), str(tmp_path)) as ne:
            s = ne.scrape()
            assert get(s, "node_textfile_scrape_error") == 0
            assert get(s, "failoverd_service_verdict", service="web",
                       verdict="healthy") == 1
            # The failed writes are counted in the file itself.
            assert get(s, "failoverd_metrics_write_failures_total") >= 1


def test_reload_moves_the_file_and_removes_the_old_one(tmp_path, sim):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    with start_with_metrics(tmp_path, sim, str(one)) as d:
        d.wait_for(r"service web: healthy", timeout=30)
        deadline = time.monotonic() + 10
        while not (one / "failoverd.prom").exists():
            assert time.monotonic() < deadline, "no file in one/"
            d.drain(0.1)
        add_metrics(tmp_path, sim, str(two))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (two / "failoverd.prom").exists():
            assert time.monotonic() < deadline, "no file in two/"
            d.drain(0.1)
        assert not (one / "failoverd.prom").exists()
        text = (two / "failoverd.prom").read_text()
        assert "# TYPE failoverd_service_verdict gauge" in text


def test_snapshots_and_preflight_are_published_per_service(tmp_path, sim):
    prom = tmp_path / "textfile"
    prom.mkdir()
    with NodeExporter(str(prom), str(tmp_path)) as ne, \
            start_with_metrics(tmp_path, sim, str(prom)) as d:
        d.wait_for(r"event=preflight_passed", timeout=30)
        s = wait_scrape(ne, d, "a preflight result", lambda s: get(
            s, "failoverd_preflight_success", service="web") == 1)
        assert get(s, "failoverd_preflight_last_run_timestamp_seconds",
                   service="web") > 0
        assert get(s, "failoverd_snapshot_run_last_success_timestamp_"
                   "seconds", service="web") is None
        begun = int(time.time())
        ctl(d.sock, "snapshot", "web")
        deadline = time.monotonic() + 60
        while len([ln for ln in d.lines if "event=snapshot_taken" in ln
                   ]) < 2:
            assert time.monotonic() < deadline, "not two snapshot_taken"
            d.drain(0.2)
        s = wait_scrape(ne, d, "the good run", lambda s: (get(
            s, "failoverd_snapshot_run_last_success_timestamp_seconds",
            service="web") or 0) >= begun)

        # Each volume's newest completed snapshot, once EC2 says it is
        # complete (the listing describes again).
        def fresh(s):
            ctl(d.sock, "snapshots", "web")
            return all((get(s, "failoverd_snapshot_last_success_"
                            "timestamp_seconds", service="web",
                            volume=v) or 0) >= begun
                       for v in VOLS.values())
        s = wait_scrape(ne, d, "each volume's new snapshot", fresh,
                        timeout=90)
        assert get(s, "node_textfile_scrape_error") == 0
