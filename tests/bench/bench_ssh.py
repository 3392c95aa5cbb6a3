"""Benchmark 2: SSH probe cost.

One OpenSSH sshd on a loopback address (host key ed25519, the user's
ed25519 key authorized). failoverd runs SSH probes against it that do
what a real check does: handshake, host key checked against known_hosts,
ed25519 public key auth, exec `true`, exit status. In the same run the
floor, bench_floor_ssh, a blocking libssh2 client, does the same steps
against the same sshd. Both CPU figures are per check, of the client
only (sshd's own cost, a fork and a login, is the server's).

The daemon does more than probe: with the EC2 endpoint a dead loopback
port, its failover engine and preflight retry their EC2 calls in the
background. A control daemon with the same services, whose probes are
due only once an hour, measures that background in the same run; the
figure judged against the target has it subtracted, and the raw one is
printed beside it. Target: failoverd <= 1.2x the floor."""
import os
import pwd
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from benchlib import BUILD, Daemon, Figures, median, pct, service_conf  # noqa
from servers import Sshd, keygen, known_hosts_line  # noqa: E402

ADDR = "127.61.0.1"
PORT = 2222
SERVICES = 2          # probes per second; sshd needs a core for ~3/s
WINDOWS = 4
WINDOW_S = 5.0
FLOOR_RUNS = 3
FLOOR_CHECKS = 8


CONTROL_S = 10.0


def ssh_probe(user, key, known_hosts, interval=1, timeout=0.9):
    return (f'{{ name = "ssh"; type = "ssh"; address = "{ADDR}"; '
            f'port = {PORT}; user = "{user}"; key_file = "{key}"; '
            f'known_hosts = "{known_hosts}"; command = "true"; '
            f'interval = {interval}; timeout = {timeout}; fall = 3; '
            f'rise = 1; }}')


def background(work, user, key, kh):
    """CPU seconds per second of the daemon doing all but probing."""
    d = Daemon([service_conf(i, [ssh_probe(user, key, kh, 3600, 5)])
                for i in range(SERVICES)], workdir=work + "/control")
    try:
        d.wait_for(r"event=startup", 30)
        d.pump(1.0)
        c0, t0 = d.stat.cpu()[0], time.monotonic()
        d.pump(CONTROL_S)
        c1, t1 = d.stat.cpu()[0], time.monotonic()
    finally:
        d.stop()
    return (c1 - c0) / (t1 - t0)


def checks(d):
    return sum(p["checks"] for s in d.status()["services"]
               for p in s["probes"])


def run():
    fig = Figures("ssh")
    work = tempfile.mkdtemp(prefix="fodbench-ssh.")
    hostkey = keygen(os.path.join(work, "ssh_host_ed25519_key"))
    userkey = keygen(os.path.join(work, "user_ed25519"))
    authorized = os.path.join(work, "authorized_keys")
    with open(authorized, "w") as f:
        f.write(open(userkey + ".pub").read())
    kh = os.path.join(work, "known_hosts")
    with open(kh, "w") as f:
        f.write(known_hosts_line(ADDR, PORT, hostkey + ".pub"))
    user = pwd.getpwuid(os.geteuid()).pw_name
    sshd = Sshd(work, ADDR, PORT, hostkey, authorized)
    floor, per, net, failures = [], [], [], 0
    try:
        for _ in range(FLOOR_RUNS):
            out = subprocess.run(
                [os.path.join(BUILD, "bench_floor_ssh"), ADDR, str(PORT),
                 user, userkey, kh, "true", str(FLOOR_CHECKS)],
                capture_output=True, text=True).stdout.split()
            floor.append(float(out[3]) / int(out[1]))
            failures += int(out[11])
        bg = background(work, user, userkey, kh)
        d = Daemon([service_conf(i, [ssh_probe(user, userkey, kh)])
                    for i in range(SERVICES)], workdir=work)
        try:
            d.wait_for(r"probe svc0/ssh: up", 60)
            for _ in range(WINDOWS):
                n0, (c0, _) = checks(d), d.stat.cpu()
                t0 = time.monotonic()
                d.pump(WINDOW_S)
                n1, (c1, _) = checks(d), d.stat.cpu()
                dt = time.monotonic() - t0
                if n1 > n0:
                    per.append((c1 - c0) * 1e6 / (n1 - n0))
                    net.append((c1 - c0 - bg * dt) * 1e6 / (n1 - n0))
            st = d.status()
            bad = sum(p["failures"] for s in st["services"]
                      for p in s["probes"])
        finally:
            d.stop()
    finally:
        sshd.close()
    fl, fo, fn = median(floor), median(per), median(net)
    raw = fo / fl if fo and fl else None
    ratio = fn / fl if fn and fl else None
    fig.add("floor CPU/check (blocking libssh2)", fl, "us", None, None,
            runs=floor, failures=failures)
    fig.add("failoverd background (EC2 retries)", bg * 1e3, "ms/s")
    fig.add("failoverd CPU/SSH probe, raw", fo, "us", None, None,
            runs=per, p99=pct(per, 99), failed_checks=bad)
    fig.add("failoverd CPU/SSH probe, net", fn, "us", None, None,
            runs=net, p99=pct(net, 99))
    fig.add("SSH probe vs floor, raw", raw, "x")
    fig.add("SSH probe vs floor, net", ratio, "x", "<= 1.2x",
            ratio is not None and ratio <= 1.2)
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([run()])
