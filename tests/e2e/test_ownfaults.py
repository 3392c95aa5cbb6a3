"""The watchdog's own faults are never production's fault (issue 13).

Out of descriptors, failoverd used to count its own failed socket()
calls against the service and fail over a healthy instance; a second
daemon on the same configuration stole the first one's control socket
and failed the same service over again; the installed failoverctl and
unit pointed at paths the daemon never used; a burst of failoverctl
runs was refused by the kernel; a value with control bytes split or
garbled a log line. Each test here drives the daemon against ec2sim and
real servers."""
import os
import re
import resource
import select
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import fodtest  # noqa: E402
from conftest import (OLD, calls, events, healthy, start,  # noqa: E402
                      write_conf)
from fodtest import BUILD, FAILOVERD, Daemon, ctl  # noqa: E402
from simfixture import Ec2Sim  # noqa: E402


def quiet_conf(tmp_path, sim, probes=("site",), extra_top=""):
    """write_conf without debug lines, so that line counts mean
    something, and with the events' own rate limit on."""
    return write_conf(str(tmp_path), sim, probes=probes, top={
        "debug": False, "alerts": {"rate_limit": 60}},
        edits=[("debug = false;", "debug = false;" + extra_top)])


def failover_requests(sim):
    return (calls(sim, "RunInstances") + calls(sim, "StopInstances")
            + calls(sim, "AssociateAddress"))


def hold(path, n):
    """n connections to the control socket that send nothing."""
    held = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            pass
        held.append(s)
    return held


# --- 1. out of descriptors ------------------------------------------------


def test_descriptor_exhaustion_is_the_watchdogs_fault_not_productions(
        tmp_path, monkeypatch):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        conf = quiet_conf(tmp_path, sim,
                          extra_top="\nprobe_max_in_flight = 8;")
        e = dict(sim.env())
        e["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
        e["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-creds")
        # The daemon gets 64 descriptors, soft and hard, as a unit with
        # LimitNOFILE=64 would give it.
        wrapper = tmp_path / "failoverd-64"
        wrapper.write_text('#!/bin/sh\nulimit -Sn 64 && ulimit -Hn 64 && '
                           'exec %s "$@"\n' % shlex.quote(FAILOVERD))
        wrapper.chmod(0o755)
        monkeypatch.setattr(fodtest, "FAILOVERD", str(wrapper))
        d = Daemon(conf, env=e)
        sock = str(tmp_path / "control.sock")
        with d:
            # Said at start: the limit is short of what it needs.
            d.wait_for(r"descriptor limit 64 .*below the 200", timeout=20)
            assert not [l for l in d.lines if "limit raised" in l]
            healthy(d)
            n = len(d.lines)
            # Twice the descriptors the daemon has, held open: on the
            # old code accept spun on EMFILE, the probes failed to open
            # sockets, web went down and was failed over.
            held = hold(sock, 128)
            try:
                d.wait_for(r"event=watchdog_unhealthy .*source=probes",
                           timeout=20, start=n)
                d.drain(8)
                flood = d.lines[n:]
            finally:
                for s in held:
                    s.close()
            evs = [ev for ev, _ in events(d, start=n)]
            assert "service_down" not in evs, "\n".join(flood)
            assert "probe_down" not in evs, "\n".join(flood)
            assert not [ev for ev in evs if ev.startswith("failover_")]
            # Bounded: one event a minute per source, one line per 10 s
            # for dropped clients; the old code wrote millions.
            assert len(flood) < 60, "\n".join(flood)
            assert all("Too many open files" in l
                       for l in flood if "event=watchdog_unhealthy" in l)
            # The connections gone, checks reach the target again and
            # the control socket answers.
            m = len(d.lines)
            d.wait_for(r"event=watchdog_healthy .*source=probes",
                       timeout=30, start=m)
            deadline = time.monotonic() + 30
            while True:
                p = ctl(sock, "ping", check=False)
                if p.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert p.returncode == 0, p.stderr
            st = ctl(sock, "status").stdout
            assert re.search(r"web\s+.*healthy", st) or "healthy" in st, st
            d.drain(2)
            assert "service_down" not in [ev for ev, _ in events(d, start=m)]
        assert failover_requests(sim) == []
        assert sim.instance(OLD)["state"] == "running"


# --- 4. one daemon per state directory ------------------------------------


def test_second_daemon_on_one_config_exits_and_first_keeps_working(
        tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        with start(tmp_path, sim, probes=("site",)) as d:
            healthy(d)
            sock_ino = os.stat(d.sock).st_ino
            e = dict(sim.env())
            e["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
            e["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-creds")
            p = subprocess.run([FAILOVERD, "-c", d.conf, "--log-stderr"],
                               capture_output=True, text=True, env=e,
                               timeout=30)
            assert p.returncode != 0
            assert "in use by another failoverd, pid %d" % d.proc.pid \
                in p.stderr, p.stderr
            assert "failoverd.lock" in p.stderr
            # The first one's socket is the same file and still answers.
            assert os.stat(d.sock).st_ino == sock_ino
            assert ctl(d.sock, "ping").returncode == 0
            with open(os.path.join(str(tmp_path), "state",
                                   "failoverd.lock")) as f:
                assert f.read().strip() == str(d.proc.pid)
            # And it alone fails the service over: one set of calls.
            n = len(d.lines)
            sim.instance_fault(OLD, "both")
            d.wait_for(r"event=failover_completed", timeout=120, start=n)
        assert len(calls(sim, "RunInstances")) == 1
        assert len(calls(sim, "StopInstances")) == 1


def test_a_live_control_socket_is_never_replaced(tmp_path):
    """Another state_dir, the same control_socket: the lock does not
    stop it, the live socket does."""
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        with start(tmp_path, sim, probes=("site",)) as d:
            healthy(d)
            other = tmp_path / "other"
            (other / "state").mkdir(parents=True)
            text = open(d.conf).read().replace(
                'state_dir = "%s/state"' % tmp_path,
                'state_dir = "%s/state"' % other)
            conf2 = other / "failoverd.conf"
            conf2.write_text(text)
            p = subprocess.run([FAILOVERD, "-c", str(conf2),
                                "--log-stderr"], capture_output=True,
                               text=True, timeout=30, env=dict(
                                   sim.env(),
                                   AWS_CONFIG_FILE=str(other / "n"),
                                   AWS_SHARED_CREDENTIALS_FILE=str(
                                       other / "n")))
            assert p.returncode != 0
            assert "another process listens on it" in p.stderr, p.stderr
            assert ctl(d.sock, "ping").returncode == 0
        # A stale socket (its daemon gone) is still replaced.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.sock)
        s.close()
        with Daemon(d.conf, env=dict(
                sim.env(), AWS_CONFIG_FILE=str(tmp_path / "n"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "n"))) as d2:
            d2.wait_for(r"event=startup")
            assert ctl(d.sock, "ping").returncode == 0


# --- 7. installed paths ---------------------------------------------------


def test_installed_unit_starts_a_daemon_the_installed_ctl_reaches(
        tmp_path):
    prefix = tmp_path / "prefix"
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix",
                        str(prefix)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    unit = (prefix / "lib/systemd/system/failoverd.service").read_text()
    assert "@FOD_" not in unit
    assert "SystemCallFilter=~@privileged @resources" in unit
    execstart = [l.split("=", 1)[1] for l in unit.splitlines()
                 if l.startswith("ExecStart=")][0]
    argv = shlex.split(execstart)
    # The unit runs the failoverd this install wrote, on the
    # configuration this install wrote.
    assert argv[0] == str(prefix / "sbin" / "failoverd"), argv
    assert os.access(argv[0], os.X_OK)
    assert argv[1] == "-c"
    assert os.path.exists(argv[2]), argv
    assert argv[2].startswith(str(prefix)), argv
    ctlbin = str(prefix / "sbin" / "failoverctl")
    # Both binaries have one default socket, the one the man pages name.
    dhelp = subprocess.run([argv[0], "--help"], capture_output=True,
                           text=True).stdout
    chelp = subprocess.run([ctlbin, "--help"], capture_output=True,
                           text=True)
    dsock = re.search(r"control_socket (\S+),", dhelp).group(1)
    csock = re.search(r"\(default (\S+),", chelp.stdout +
                      chelp.stderr).group(1)
    assert dsock == csock
    man8 = (prefix / "share/man/man8/failoverd.8").read_text()
    assert dsock in man8
    dstate = re.search(r"state_dir (\S+)\n", dhelp).group(1)
    assert dstate in (prefix / "share/man/man5/failoverd.conf.5") \
        .read_text()
    # Started as systemd would, with the test's configuration.
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        conf = write_conf(str(tmp_path), sim, probes=("site",))
        argv[2] = conf
        e = dict(os.environ, **sim.env())
        e["AWS_CONFIG_FILE"] = str(tmp_path / "n")
        e["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "n")
        proc = subprocess.Popen(argv + ["--log-stderr"], env=e,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            sock = str(tmp_path / "control.sock")
            deadline = time.monotonic() + 30
            while True:
                r = subprocess.run([ctlbin, "-s", sock, "ping"],
                                   capture_output=True, text=True)
                if r.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert r.returncode == 0, r.stderr
        finally:
            proc.terminate()
            assert proc.wait(30) == 0


# --- 10. bursts and control bytes -----------------------------------------


def test_a_burst_of_2500_clients_is_answered_not_refused(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        with start(tmp_path, sim, probes=("site",)) as d:
            healthy(d)
            n = 2500
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard < n + 100:
                pytest.skip("needs %d descriptors, hard limit %d"
                            % (n + 100, hard))
            resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))
            conns, refused = [], 0
            try:
                for _ in range(n):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.setblocking(False)
                    try:
                        s.connect(d.sock)
                    except BlockingIOError:
                        # EAGAIN: the kernel's queue was full.
                        refused += 1
                        s.close()
                        continue
                    conns.append(s)
                for s in conns:
                    try:
                        s.send(b"ping\n")
                    except OSError:
                        pass
                replies = {s: b"" for s in conns}
                open_ = set(conns)
                poller = select.epoll()
                byfd = {s.fileno(): s for s in conns}
                for s in conns:
                    poller.register(s, select.EPOLLIN)
                deadline = time.monotonic() + 120
                while open_ and time.monotonic() < deadline:
                    for fd, _ in poller.poll(1):
                        s = byfd[fd]
                        try:
                            chunk = s.recv(4096)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                        if chunk:
                            replies[s] += chunk
                        else:
                            open_.discard(s)
                            poller.unregister(s)
                poller.close()
            finally:
                for s in conns:
                    s.close()
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            assert refused == 0
            assert not open_
            ok = [r for r in replies.values() if r.startswith(b"OK")]
            busy = [r for r in replies.values()
                    if r.startswith(b"ERR busy")]
            assert len(ok) + len(busy) == n, \
                set(r[:40] for r in replies.values())
            assert ok
            # The daemon goes on.
            assert ctl(d.sock, "ping").returncode == 0


def test_control_bytes_of_a_value_never_reach_the_log_raw(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        with start(tmp_path, sim, probes=("site",)) as d:
            healthy(d)
            n = len(d.lines)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)
            # CR, ESC and DEL in a service name; LF ends the request.
            s.sendall(b"pause web\revent=failover_completed\x1b[2K\x7f\n")
            while s.recv(4096):
                pass
            s.close()
            line = d.wait_for(r"event=control_command", start=n)
            assert "\\revent=failover_completed\\x1b[2K\\x7f" in line
            for l in d.lines[n:]:
                assert not re.search(r"[\x00-\x1f\x7f]", l), l
            assert "failover_completed" not in [
                ev for ev, _ in events(d, start=n)]


def test_reload_keeps_the_socket_and_the_lock_it_holds(tmp_path):
    """A reload that changes only control_mode keeps the socket (the old
    code unlinked and rebound it); one that moves state_dir to a
    directory another daemon holds is refused, and the lock stays."""
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        env = dict(sim.env(), AWS_CONFIG_FILE=str(tmp_path / "n"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "n"))
        other = tmp_path / "other"
        (other / "state").mkdir(parents=True)
        with start(tmp_path, sim, probes=("site",)) as d:
            healthy(d)
            ino = os.stat(d.sock).st_ino
            text = open(d.conf).read()
            with open(d.conf, "w") as f:
                f.write('control_mode = "0600";\n' + text)
            n = len(d.lines)
            d.signal(signal.SIGHUP)
            d.wait_for(r"event=config_loaded .*SIGHUP", start=n)
            st = os.stat(d.sock)
            assert st.st_ino == ino
            assert st.st_mode & 0o777 == 0o600
            assert ctl(d.sock, "ping").returncode == 0
            # A second daemon on its own directory and socket.
            conf2 = other / "failoverd.conf"
            conf2.write_text(text.replace(str(tmp_path) + "/state",
                                          str(other) + "/state")
                             .replace(str(tmp_path) + "/control.sock",
                                      str(other) + "/control.sock"))
            with Daemon(str(conf2), env=env) as d2:
                d2.wait_for(r"event=startup")
                with open(d.conf, "w") as f:
                    f.write(text.replace(str(tmp_path) + "/state",
                                         str(other) + "/state"))
                n = len(d.lines)
                d.signal(signal.SIGHUP)
                line = d.wait_for(r"event=config_rejected", start=n)
                assert "pid %d" % d2.proc.pid in line, line
                with open(tmp_path / "state" / "failoverd.lock") as f:
                    assert f.read().strip() == str(d.proc.pid)
                assert ctl(d.sock, "ping").returncode == 0
