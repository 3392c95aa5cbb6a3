"""The daemon's frame: start, stop, reload, systemd notifications, the
control socket and the unit file."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from fodtest import FAILOVERCTL, FAILOVERD, SRCDIR, Daemon, ctl

CONF = """\
state_dir = "{d}/state";
control_socket = "{d}/control.sock";
aws = {{ region = "us-east-1"; }};
services = (
  {{
    name = "{name}";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    volumes = ( {{ id = "vol-0123456789abcdef0"; device = "/dev/sdf"; }} );
    launch = {{
      ami = "ami-0123456789abcdef0";
      instance_type = "t3.micro";
      subnet = "subnet-0123456789abcdef0";
    }};
    probes = (
      {{ name = "http"; type = "http"; address = "127.0.0.1"; port = 9;
         interval = 1.0; timeout = 0.5; }}
    );
  }}
);
"""


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "state").mkdir()
    return tmp_path


def write_conf(d, name="web", extra=""):
    path = d / "failoverd.conf"
    path.write_text(CONF.format(d=d, name=name) + extra)
    return str(path)


def test_sigterm_exits_zero_and_logs_shutdown(workdir):
    conf = write_conf(workdir)
    d = Daemon(conf)
    d.wait_for(r"event=startup")
    d.wait_for(r"event=config_loaded")
    assert d.stop() == 0
    assert any("event=shutdown" in l and "SIGTERM" in l for l in d.lines)
    assert not os.path.exists(workdir / "control.sock")


def test_sighup_with_broken_file_keeps_running_old_config(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        assert "web" in ctl(sock, "status").stdout
        # A typo in a setting name: must be refused, not defaulted.
        typo_line = len(open(conf).read().splitlines()) + 1
        with open(conf, "a") as f:
            f.write("sevrices_typo = 1;\n")
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        d.wait_for(r"event=config_rejected", start=mark)
        line = d.wait_for(r"sevrices_typo", start=mark)
        assert "failoverd.conf:%d: sevrices_typo" % typo_line in line
        # Still alive, still answering, still the old service.
        assert d.proc.poll() is None
        out = ctl(sock, "status").stdout
        assert "web" in out


def test_sighup_with_valid_file_applies_it(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        write_conf(workdir, name="api")
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        d.wait_for(r"event=config_loaded.*SIGHUP", start=mark)
        out = ctl(sock, "status").stdout
        assert "api" in out and "web" not in out


def test_failoverctl_reload_refuses_broken_file(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        with open(conf, "a") as f:
            f.write("syslog_facility = \"nosuch\";\n")
        p = ctl(sock, "reload", check=False)
        assert p.returncode == 1
        assert "rejected" in p.stderr
        d.wait_for(r"event=control_command.*command=reload.*uid=%d"
                   % os.getuid())
        d.wait_for(r"syslog_facility")
        assert ctl(sock, "ping").stdout == "pong\n"


def test_sd_notify_ready_and_watchdog(workdir):
    conf = write_conf(workdir)
    path = str(workdir / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    with Daemon(conf, env=env) as d:
        got = []
        while not any("WATCHDOG=1" in m for m in got):
            got.append(s.recv(4096).decode())
        assert "READY=1" in got[0]
        assert any("STATUS=1 services" in m for m in got)
        # The watchdog keeps coming: a loop timer, not a one-off.
        n = sum("WATCHDOG=1" in m for m in got)
        while n < 3:
            if "WATCHDOG=1" in s.recv(4096).decode():
                n += 1
        d.signal(signal.SIGHUP)
        msgs = [s.recv(4096).decode() for _ in range(6)]
        assert any("RELOADING=1" in m for m in msgs)
        d.stop()
        s.settimeout(2)
        tail = []
        try:
            while True:
                tail.append(s.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("STOPPING=1" in m for m in tail)
    s.close()


def test_failoverctl_says_when_daemon_is_unreachable(tmp_path):
    sock = str(tmp_path / "nothing.sock")
    p = ctl(sock, "status", check=False)
    assert p.returncode == 3
    assert "cannot reach the daemon at %s" % sock in p.stderr


def test_versions():
    for prog in (FAILOVERD, FAILOVERCTL):
        p = subprocess.run([prog, "--version"], capture_output=True,
                           text=True)
        assert p.returncode == 0
        assert p.stdout.startswith(os.path.basename(prog) + " ")


def test_unknown_control_command_is_an_error(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        p = ctl(sock, "frobnicate", check=False)
        assert p.returncode == 1
        assert "unknown command 'frobnicate'" in p.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_unit_file_verifies_and_is_sandboxed(tmp_path):
    unit = open(os.path.join(SRCDIR, "systemd",
                             "failoverd.service.in")).read()
    # verify wants the binaries and man pages the unit names to exist.
    unit = unit.replace("@FOD_SBINDIR@/failoverd", FAILOVERD).replace(
        "@FOD_PATH_CONFIG@", "/etc/failoverd/failoverd.conf")
    path = tmp_path / "failoverd.service"
    path.write_text(unit)
    man = tmp_path / "man"
    for sec in ("5", "8"):
        (man / ("man" + sec)).mkdir(parents=True)
    for page, sec in (("failoverd.8", "8"), ("failoverctl.8", "8"),
                      ("failoverd.conf.5", "5")):
        shutil.copy(os.path.join(SRCDIR, "man", page), man / ("man" + sec))
    env = dict(os.environ, MANPATH=str(man))
    p = subprocess.run(["systemd-analyze", "verify", str(path)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--threshold=20", str(path)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    level = float(p.stdout.split("exposure level for failoverd.service:")[1]
                  .split()[0])
    assert level <= 2.0


def test_a_chatty_daemon_never_blocks_on_its_log(workdir):
    """A daemon at debug level writes far more than a pipe holds while
    the test looks elsewhere; it must still stop at once on SIGTERM."""
    probes = ",\n".join(
        '{ name = "p%d"; type = "http"; address = "127.0.0.1"; port = 9; '
        'interval = 0.1; timeout = 0.05; }' % i for i in range(40))
    text = CONF.format(d=workdir, name="web")
    start = text.index("    probes = (")
    end = text.index("    );", start) + len("    );")
    text = text[:start] + "    probes = (\n" + probes + "\n    );" + \
        text[end:]
    path = workdir / "failoverd.conf"
    path.write_text(text)
    d = Daemon(str(path), args=("-d",))
    d.wait_for(r"event=config_loaded")
    time.sleep(3.0)     # nobody calls wait_for() meanwhile
    logged = sum(len(l) + 1 for l in d.lines)
    assert d.stop(timeout=10.0) == 0
    assert logged > 65536, "the daemon logged too little to fill a pipe"


# --- the harness never lets a daemon off loopback ---------------------------


def test_harness_refuses_a_daemon_that_would_ask_the_real_imds(tmp_path):
    import loopguard
    conf = tmp_path / "f.conf"
    conf.write_text('aws = { region = "us-east-1"; };\n')
    env = {"AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:9"}
    with pytest.raises(loopguard.OffLoopback, match="169.254.169.254"):
        loopguard.check_file(env, str(conf))
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://169.254.169.254"
    with pytest.raises(loopguard.OffLoopback, match="not on loopback"):
        loopguard.check_file(env, str(conf))
    conf.write_text('aws = { imds_endpoint = "http://127.0.0.2:80"; };\n')
    loopguard.check_file(env, str(conf))
    with pytest.raises(loopguard.OffLoopback, match="real EC2"):
        loopguard.check_file({}, str(conf))
    conf.write_text('aws = { endpoint = "https://ec2.us-east-1.'
                    'amazonaws.com"; imds_endpoint = "http://[::1]:80"; };\n')
    with pytest.raises(loopguard.OffLoopback, match="amazonaws"):
        loopguard.check_file(env, str(conf))
# Input that once killed or froze the daemon (issue 13): each is refused
# with config_rejected and a message naming the file, and the daemon goes
# on answering failoverctl with its old configuration.

def reload_refused(d, sock, says):
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=config_rejected", start=mark)
    line = d.wait_for(says, start=mark)
    assert d.proc.poll() is None
    assert ctl(sock, "ping").stdout == "pong\n"
    assert "web" in ctl(sock, "status").stdout
    return line


def test_sighup_with_include_of_a_directory_is_refused(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        # libconfig's scanner exit()s on a directory: never let it see one.
        with open(conf, "a") as f:
            f.write('@include "%s"\n' % workdir)
        line = reload_refused(d, sock, r"not a regular file")
        assert '@include "%s": %s: a directory' % (workdir, workdir) in line


def test_deep_nesting_is_refused_on_reload(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        with open(conf, "a") as f:
            f.write("deep = %s%s;\n" % ("(" * 2000, ")" * 2000))
        reload_refused(d, sock, r"nest deeper than 16 levels")


def test_fifo_at_the_config_path_does_not_block_the_loop(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        os.rename(conf, conf + ".real")
        os.mkfifo(conf, 0o600)
        # No writer ever comes: reading would block the loop for good.
        line = reload_refused(d, sock, r"a FIFO, not a regular file")
        assert conf in line
        # failoverctl reload takes the same path.
        p = ctl(sock, "reload", check=False)
        assert p.returncode == 1
        assert ctl(sock, "ping").stdout == "pong\n"


def test_huge_config_is_refused_on_reload(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        with open(conf, "a") as f:
            for i in range(400000):
                f.write("# padding line %d of a configuration that grew\n"
                        % i)
        reload_refused(d, sock, r"larger than 16777216 bytes")


def test_one_huge_group_is_refused_on_reload(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        # libconfig checks each member against all before it: 40,000
        # members froze the loop for seconds.
        with open(conf, "a") as f:
            f.write("".join("x%d = 1;\n" % i for i in range(40000)))
        reload_refused(d, sock, r"a group of more than 256 settings")


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2,
                                 signal.SIGALRM, signal.SIGVTALRM,
                                 signal.SIGPWR, signal.SIGRTMIN + 3],
                         ids=lambda s: signal.Signals(s).name
                         if s in signal.Signals._value2member_map_
                         else str(s))
def test_stray_signals_do_not_kill_it(workdir, sig):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        mark = len(d.lines)
        d.signal(sig)
        if sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
            d.wait_for(r"%s received: ignored" % signal.Signals(sig).name,
                       start=mark)
        assert ctl(sock, "ping").stdout == "pong\n"
        assert d.proc.poll() is None


def test_switch_with_a_huge_ami_id_is_refused(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        ami = "ami-" + "0" * 3100
        p = ctl(sock, "--yes", "switch", "web", "--ami", ami, check=False)
        assert p.returncode == 1
        assert "(3104 characters) is not an AMI id" in p.stderr, p.stderr
        p = ctl(sock, "--yes", "switch", "web", "--ami", "ami-XYZ",
                check=False)
        assert p.returncode == 1
        assert '"ami-XYZ" is not an AMI id' in p.stderr, p.stderr
        assert d.proc.poll() is None
        assert ctl(sock, "ping").stdout == "pong\n"


# --- failoverctl events: the daemon's recent event lines ---

def _stream_lines(proc, out):
    """Collects a failoverctl's stdout lines as they come."""
    for line in proc.stdout:
        out.append(line)


def _wait_lines(lines, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = [l for l in list(lines) if pred(l)]
        if hit:
            return hit[0]
        time.sleep(0.05)
    raise AssertionError("no matching line in %d lines within %ss:\n%s"
                         % (len(lines), timeout, "".join(lines[-20:])))


def test_failoverctl_events_shows_what_the_log_shows(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        ctl(sock, "pause", "web")
        out = ctl(sock, "events").stdout.splitlines()
        # The same lines, each with the time it happened (UTC).
        for event in ("startup", "config_loaded"):
            hit = [l for l in out if "event=%s" % event in l]
            assert hit, out
            assert any(l.split(" ", 1)[1] in log for l in hit
                       for log in d.lines), (hit, d.lines)
        assert any(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
                            r"event=control_command service=web "
                            r"command=pause uid=\d+ pid=\d+$", l)
                   for l in out), out
        j = json.loads(ctl(sock, "--json", "events").stdout)
        assert any("event=startup" in l for l in j["events"])
        # Reading is not an act: it leaves no audit line of its own.
        assert not any("command=events" in l for l in d.lines)


def test_failoverctl_events_follow_streams_new_events(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        p = subprocess.Popen([FAILOVERCTL, "-s", sock, "events",
                              "--follow"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = []
        t = threading.Thread(target=_stream_lines, args=(p, lines),
                             daemon=True)
        t.start()
        try:
            _wait_lines(lines, lambda l: "event=config_loaded" in l, 30)
            ctl(sock, "pause", "web")
            _wait_lines(lines, lambda l: "command=pause" in l, 30)
            ctl(sock, "resume", "web")
            _wait_lines(lines, lambda l: "command=resume" in l, 30)
            # Still following, past the client timeout of a request.
            assert p.poll() is None
        finally:
            p.terminate()
            p.wait(timeout=30)
        assert ctl(sock, "ping").stdout == "pong\n"


def _request(sock, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    s.sendall(line.encode())
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    return reply.decode()


def test_a_follower_that_never_reads_loses_lines_not_the_daemon(workdir):
    conf = write_conf(workdir)
    sock = str(workdir / "control.sock")
    with Daemon(conf) as d:
        d.wait_for(r"event=config_loaded")
        hostile = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hostile.connect(sock)
        hostile.sendall(b"events --follow\n")
        # More event lines than a socket buffer and the daemon's
        # per-follower cap hold; the follower reads none of them.
        slow = r"events follower .* reads too slowly; dropping lines"
        for i in range(50000):
            assert _request(sock, "%s web\n" % ("pause", "resume")[i % 2]
                            ).startswith("OK\n")
            if i % 200 == 0 and any(re.search(slow, l) for l in d.lines):
                break
        d.wait_for(slow, 30)
        assert _request(sock, "ping\n") == "OK\npong\n"
        # It catches up: what it missed is said, then new lines flow.
        hostile.settimeout(2)
        got = b""
        while True:
            try:
                chunk = hostile.recv(1 << 20)
            except socket.timeout:
                break
            assert chunk, "the daemon closed a follower that was slow"
            got += chunk
        caught_up = len(got)
        assert _request(sock, "pause web\n").startswith("OK\n")
        hostile.settimeout(30)
        while b"command=pause" not in got[caught_up:]:
            chunk = hostile.recv(65536)
            assert chunk
            got += chunk
        assert re.search(rb"\n-- \d+ event lines dropped: this reader "
                         rb"was too slow\n", got), got[-500:]
        hostile.close()
        d.wait_for(r"events follower .*: \d+ lines dropped", 30)
