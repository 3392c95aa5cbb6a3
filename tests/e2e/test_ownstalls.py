"""The daemon's own stalls are never the service's (issue 14).

A syslog reader that stops reading must not stop the probes: failoverd
logs through its own non-blocking socket with a bounded queue, and says
how many lines it dropped once the reader is back. A daemon whose loop
was stopped (SIGSTOP: a paused VM, a machine swapping) enters TILT: it
keeps probing, its probes' counts start again, and it fails nothing
over until the tilt period is over."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import conftest as tf  # noqa: E402
from fodtest import FAILOVERD, Daemon, ctl  # noqa: E402
from simfixture import Ec2Sim  # noqa: E402

CONF = """\
state_dir = "{d}/state";
control_socket = "{d}/control.sock";
aws = {{ region = "us-east-1"; }};
services = (
  {{
    name = "web";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    launch = {{ ami = "ami-0123456789abcdef0"; instance_type = "t3.micro";
               subnet = "subnet-0123456789abcdef0"; }};
    policy = {{ auto_failover = false; }};
    probes = (
{probes}
    );
  }}
);
"""


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "state").mkdir()
    return tmp_path


def checks(sock):
    """The probes' own count of checks, through the control socket."""
    st = json.loads(ctl(sock, "status", "--json").stdout)
    return sum(p["checks"] for s in st["services"] for p in s["probes"])


def test_probes_go_on_while_the_syslog_reader_is_stalled(workdir):
    # 40 probes at 0.1 s to a closed loopback port and debug on: several
    # hundred lines a second, far more than the socket and the queue hold.
    probes = ",\n".join(
        '{ name = "p%d"; type = "http"; address = "127.0.0.1"; port = 9; '
        'interval = 0.1; timeout = 0.05; }' % i for i in range(40))
    conf = workdir / "failoverd.conf"
    conf.write_text(CONF.format(d=workdir, probes=probes))
    sock = str(workdir / "control.sock")
    logpath = str(workdir / "log.sock")
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(logpath)
    try:
        # FAILOVERD_LOG_SOCKET: log.c's test hook, the syslog socket.
        with Daemon(str(conf), env={"FAILOVERD_LOG_SOCKET": logpath},
                    args=("-d",)) as d:
            d.wait_for(r"event=config_loaded")
            # Nobody reads: syslog(3) would block the loop here for good.
            first = checks(sock)
            deadline = time.monotonic() + 120
            while checks(sock) < first + 3000:
                assert time.monotonic() < deadline, \
                    "the probes stopped while the log reader was stalled"
                time.sleep(0.5)
            # The reader is back: what waited, then the count of the rest.
            reader.settimeout(60)
            got, dropped = [], None
            while dropped is None:
                data = reader.recv(65536).decode(errors="replace")
                got.append(data)
                m = re.search(r"failoverd\[%d\]: log: (\d+) lines dropped "
                              r"while the log reader was stalled$"
                              % d.proc.pid, data)
                if m:
                    dropped = int(m.group(1))
            assert dropped > 0
            # RFC 3164 as syslog(3) sends it: daemon facility, the pid.
            assert re.match(r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d "
                            r"failoverd\[%d\]: " % d.proc.pid, got[0])
            assert int(got[-1][1:got[-1].index(">")]) == \
                (3 << 3) | 4        # LOG_DAEMON | LOG_WARNING
            # stderr was never held up by the stalled syslog socket.
            d.wait_for(r"probe web/p0: check")
            assert not any("lines dropped" in l for l in d.lines)
    finally:
        reader.close()


def test_probes_go_on_while_nobody_reads_stderr(workdir):
    """In the foreground or under systemd the log is also on stderr: a
    reader that stops (a pipe nobody drains) must not stop the loop."""
    probes = ",\n".join(
        '{ name = "p%d"; type = "http"; address = "127.0.0.1"; port = 9; '
        'interval = 0.1; timeout = 0.05; }' % i for i in range(40))
    conf = workdir / "failoverd.conf"
    conf.write_text(CONF.format(d=workdir, probes=probes))
    sock = str(workdir / "control.sock")
    env = dict(os.environ)
    env["AWS_ENDPOINT_URL_EC2"] = "http://127.0.0.1:9"
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:9"
    # No syslog: only the stderr sink is under test.
    env["FAILOVERD_LOG_SOCKET"] = str(workdir / "nobody-listens")
    import loopguard
    loopguard.check_file(env, str(conf))
    proc = subprocess.Popen([FAILOVERD, "-c", str(conf), "--log-stderr",
                             "-d"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        # Nothing reads the pipe: it fills (64 KiB), then the queue.
        first = checks(sock)
        deadline = time.monotonic() + 120
        while checks(sock) < first + 3000:
            assert time.monotonic() < deadline, \
                "the probes stopped while nobody read stderr"
            time.sleep(0.5)
        # Read again: the count of what was dropped comes through.
        buf = b""
        rx = re.compile(rb"warning: log: (\d+) lines dropped while the "
                        rb"log reader was stalled\n")
        fd = proc.stderr.fileno()
        deadline = time.monotonic() + 60
        while rx.search(buf) is None:
            assert time.monotonic() < deadline, buf[-2000:]
            r, _, _ = select.select([fd], [], [], 1.0)
            if r:
                chunk = os.read(fd, 1 << 20)
                assert chunk, "failoverd exited"
                # Keep the tail only: the log runs on at debug level.
                buf = (buf + chunk)[-(1 << 20):]
        assert int(rx.search(buf).group(1)) > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        # Drain while it stops: the exit path waits for its log a while.
        out = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, out[-2000:]


# --- TILT: a stalled loop acts on fresh evidence only ----------------------


def test_a_stall_holds_the_failover_until_the_tilt_is_over(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        conf = tf.write_conf(str(tmp_path), sim, probes=("site",))
        with open(conf) as f:
            text = f.read()
        # Long enough for a fresh DOWN inside it on a busy machine.
        with open(conf, "w") as f:
            f.write(text.replace("debug = true;",
                                 "debug = true;\ntilt_period = 15;"))
        e = dict(sim.env())
        e["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
        e["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-creds")
        with Daemon(conf, env=e) as d:
            tf.healthy(d)
            # The daemon stops (a paused VM); production breaks meanwhile.
            mark = len(d.lines)
            d.signal(signal.SIGSTOP)
            try:
                sim.instance_fault(tf.OLD, "both")
                time.sleep(6)       # the stall: > 2 s past the 1 s tick
            finally:
                d.signal(signal.SIGCONT)
            tilt = d.wait_for(r"event=watchdog_tilt ", start=mark)
            assert tf.field(tilt, "reason") == "stall"
            # The probes start their counts again: DOWN on fresh checks,
            # and the failover waits for the tilt to be over.
            held = d.wait_for(r"event=failover_held .*reason=tilt",
                              timeout=30, start=mark)
            assert d.lines.index(held) > d.lines.index(tilt)
            assert tf.calls(sim, "StopInstances") == []
            assert tf.calls(sim, "RunInstances") == []
            # failoverctl status says so while it lasts.
            sock = str(tmp_path / "control.sock")
            out = ctl(sock, "status").stdout
            if "watchdog: TILT" not in out:
                # Only if it just ended: the log says so already.
                d.wait_for(r"event=watchdog_tilt_over", timeout=10,
                           start=mark)
            st = json.loads(ctl(sock, "status", "--json").stdout)
            assert isinstance(st["tilt_left"], (int, float))
            over = d.wait_for(r"event=watchdog_tilt_over", timeout=60,
                              start=mark)
            started = d.wait_for(r"event=failover_started", timeout=30,
                                 start=mark)
            assert d.lines.index(started) > d.lines.index(over)
            assert not [ev for ev, line in tf.events(d, start=mark)
                        if ev == "failover_step" and
                        d.lines.index(line) < d.lines.index(over)]
            d.wait_for(r"event=failover_completed", timeout=90, start=mark)
            tf.assert_replaced(sim)
