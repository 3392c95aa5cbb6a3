"""Benchmark 8: probes while the log reader is stalled (issue 14).

syslog(3) sends on a blocking socket: when the syslog daemon stops
reading /dev/log, the sender waits, and a daemon that logs from its
event loop stops probing. failoverd's log sinks are its own,
non-blocking, with a bounded queue (src/log.c).

A daemon at debug level (a line or more per check) with 20 HTTP probes
at 0.1 s (200 checks a second, to a closed loopback port: refused at
once) logs to a datagram socket named by FAILOVERD_LOG_SOCKET (a test
hook; never the host's /dev/log). Two runs of WINDOW seconds each:
  - "reader": a thread reads that socket as fast as lines come;
  - "stalled": nobody reads it (the kernel holds a few datagrams,
    net.unix.max_dgram_qlen, then the sender would wait).
Per run: checks done in the window (status --json, the probes' own
count; "no answer" when the control socket does not answer within
5 s, which is what a blocked loop looks like), against the 200/s
planned; and the spread of the checks' start times, from the `late=`
field of each check's debug line on stderr (how far a start missed its
planned time), p50, p99 and max. Run it against an older build with
FOD_BENCH_BUILD to compare."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import (FAILOVERCTL, Daemon, Figures, log_stamp, median,  # noqa
                      pct, service_conf)

PROBES = 20
INTERVAL = 0.1
WINDOW = 20.0
SETTLE = 3.0
LATE_RX = re.compile(r"probe \S+: check .* late=([0-9.]+)ms")


def probe(i):
    return (f'{{ name = "p{i}"; type = "http"; address = "127.0.0.1"; '
            f'port = 9; path = "/"; interval = {INTERVAL}; '
            f'timeout = 0.05; fall = 3; rise = 2; }}')


def checks(sock):
    """The probes' own count of checks, or None when the daemon does not
    answer (its loop is blocked)."""
    try:
        p = subprocess.run([FAILOVERCTL, "-s", sock, "status", "--json"],
                           capture_output=True, text=True, timeout=5)
        st = json.loads(p.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        return None
    return sum(pr["checks"] for s in st["services"] for pr in s["probes"])


class Reader(threading.Thread):
    """Reads the log socket for as long as it is open."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.lines = 0
        self.drops = []

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            self.lines += 1
            if b"lines dropped while the log reader" in data:
                self.drops.append(data.decode(errors="replace"))


def one(mode, fig):
    work = tempfile.mkdtemp(prefix="fodbench-logstall.")
    path = os.path.join(work, "log.sock")
    log = os.path.join(work, "stderr.log")
    rs = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rs.bind(path)
    reader = None
    if mode == "reader":
        reader = Reader(rs)
        reader.start()
    d = Daemon([service_conf(0, [probe(i) for i in range(PROBES)])],
               debug=True, workdir=work, logfile=log,
               env={"FAILOVERD_LOG_SOCKET": path})
    try:
        time.sleep(SETTLE)
        t0 = time.time()
        n0 = checks(d.sock)
        time.sleep(WINDOW)
        n1 = checks(d.sock)
        t1 = time.time()
        alive = d.proc.poll() is None
    finally:
        d.stop()
        rs.close()
    late = []
    logged = 0
    with open(log, errors="replace") as f:
        for line in f:
            m = LATE_RX.search(line)
            if m is None:
                continue
            try:
                t = log_stamp(line)
            except ValueError:
                continue
            if t0 <= t <= t1:
                logged += 1
                late.append(float(m.group(1)))
    planned = PROBES / INTERVAL
    done = (n1 - n0) / (t1 - t0) if n0 is not None and n1 is not None \
        else None
    fig.add(f"{mode}: checks/s (status)", done, "/s", f"{planned:.0f}/s",
            None if done is None else done >= 0.9 * planned,
            answered=n1 is not None, alive=alive)
    fig.add(f"{mode}: checks/s (stderr lines)", logged / (t1 - t0), "/s")
    fig.add(f"{mode}: start late p50", median(late), "ms")
    fig.add(f"{mode}: start late p99", pct(late, 99), "ms")
    fig.add(f"{mode}: start late max", max(late) if late else None, "ms")
    if reader is not None:
        fig.add(f"{mode}: syslog datagrams read", reader.lines)


def run():
    fig = Figures("log_stall")
    for mode in ("reader", "stalled"):
        one(mode, fig)
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([run()])
