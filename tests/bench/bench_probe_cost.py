"""Benchmark 1: HTTP probe cost at scale.

N services (100, 1,000, 10,000), each with one HTTP probe every 1 s
against its own loopback address, all served by one bench_target. For
each N, in the same run:
  - the floor: bench_floor_http, a blocking client doing only socket,
    connect, send, recv, close, against the same targets (CPU per request,
    median of 5 runs), back to back as the issue defines it; and, for
    context only, the same client paced at N requests a second: in this
    VM a sleep and a wakeup cost about as much as a request, and a
    daemon checking at N/s sleeps between checks;
  - failoverd without debug logging: probes/s (requests the targets
    served), CPU per probe (every thread's schedstat run time over the
    probes of a window; median and p99 of the windows), and RSS;
  - failoverd with -d: schedule jitter, from the debug line every check
    logs with "late=", how far its start missed its planned time;
  - a control daemon, the same services with probes due once an hour:
    what the daemon spends besides probing (with the EC2 endpoint a dead
    port, every service's preflight and engine calls wait in the EC2
    client's queue and are retried). "net" CPU per probe has it
    subtracted; the target is judged on net, raw is printed beside it.
Targets: CPU per probe <= 2.0x the floor, RSS < 64 MB at 10,000, p99
jitter < 5 ms at 1,000 services."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import (BUILD, Daemon, Figures, Targets, addresses,  # noqa
                      http_probe, median, pct, service_conf)

SIZES = (100, 1000, 10000)
FLOOR_RUNS = 5
WINDOWS = 5
WINDOW_S = 2.0
JITTER_S = 5.0
LATE = re.compile(r"probe svc\d+/http: check \S+ latency=\S+ late=(-?[\d.]+)ms")


def floor(addrs):
    """CPU µs per request of the blocking floor client, FLOOR_RUNS runs."""
    per = []
    count = max(4000, len(addrs))
    for _ in range(FLOOR_RUNS):
        out = subprocess.run(
            [os.path.join(BUILD, "bench_floor_http"), "80", str(count),
             *addrs], capture_output=True, text=True, check=True).stdout
        f = out.split()
        per.append(float(f[3]) / int(f[1]))
    return per


def paced_floor(addrs):
    """CPU µs per request of the floor client at len(addrs) a second."""
    n = len(addrs)
    out = subprocess.run(
        [os.path.join(BUILD, "bench_floor_http"), "-r", str(n), "80",
         str(max(500, min(5 * n, 10000))), *addrs], capture_output=True,
        text=True, check=True).stdout.split()
    return float(out[3]) / int(out[1])


def cost(targets, services):
    """failoverd without -d: probes/s, CPU µs per probe, RSS."""
    d = Daemon(services)
    try:
        d.wait_for(r"event=startup|event=config_loaded", 120)
        # Before the checks add theirs: configuration, services, engine.
        rss_start = d.stat.rss_mb()[0]
        # Every probe's first start falls inside its first interval.
        d.pump(2.5)
        per, rates, cpu_rate = [], [], []
        for _ in range(WINDOWS):
            s0, h0 = targets.served()
            c0, _ = d.stat.cpu()
            t0 = time.monotonic()
            d.pump(WINDOW_S)
            s1, h1 = targets.served()
            c1, _ = d.stat.cpu()
            t1 = time.monotonic()
            n = (s1 - s0) + (h1 - h0)
            rates.append(n / (t1 - t0))
            cpu_rate.append(((c1 - c0) / (t1 - t0), n / (t1 - t0)))
            if n > 0:
                per.append((c1 - c0) * 1e6 / n)
        rss, hwm = d.stat.rss_mb()
        threads = len(os.listdir(f"/proc/{d.proc.pid}/task"))
    finally:
        d.stop()
    return per, rates, rss, hwm, threads, rss_start, cpu_rate


def background(n, addrs):
    """CPU seconds per second of a daemon with the same services whose
    probes are due once an hour: all it does besides probing; and its
    RSS, the memory that is not the probes' checks."""
    d = Daemon([service_conf(i, [http_probe(a, interval=3600.0,
                                            timeout=2.0)])
                for i, a in enumerate(addrs)])
    try:
        d.wait_for(r"event=startup|event=config_loaded", 120)
        d.pump(2.5)
        c0, t0 = d.stat.cpu()[0], time.monotonic()
        d.pump(WINDOWS * WINDOW_S / 2)
        c1, t1 = d.stat.cpu()[0], time.monotonic()
        rss = d.stat.rss_mb()[0]
    finally:
        d.stop()
    return (c1 - c0) / (t1 - t0), rss


def jitter(services):
    """failoverd with -d: lateness of each check's start, in ms."""
    late = []
    d = Daemon(services, debug=True)
    try:
        d.wait_for(r"event=startup|event=config_loaded", 120)
        d.pump(2.5)

        def on_line(line):
            m = LATE.search(line)
            if m:
                late.append(float(m.group(1)))
        d.pump(JITTER_S, on_line)
    finally:
        d.stop()
    return late


def run(sizes=SIZES):
    fig = Figures("probe_cost")
    for n in sizes:
        addrs = addresses(n)
        services = [service_conf(i, [http_probe(a)])
                    for i, a in enumerate(addrs)]
        targets = Targets(addrs)
        try:
            fl = floor(addrs)
            paced = paced_floor(addrs)
            per, rates, rss, hwm, threads, rss0, cr = cost(targets,
                                                           services)
            bg, bg_rss = background(n, addrs)
            late = jitter(services)
        finally:
            targets.close()
        fl_med = median(fl)
        cpu_med = median(per)
        raw = cpu_med / fl_med if cpu_med and fl_med else None
        net = [(c - bg) * 1e6 / r for c, r in cr if r > 0]
        net_med = median(net)
        ratio = net_med / fl_med if net_med and fl_med else None
        fig.add(f"N={n}: probes/s", median(rates), "/s", f"{n}/s",
                None, runs=rates)
        fig.add(f"N={n}: floor CPU/request", fl_med, "us", None, None,
                runs=fl)
        fig.add(f"N={n}: failoverd background (not probing)", bg * 1e3,
                "ms/s")
        fig.add(f"N={n}: failoverd CPU/probe, raw", cpu_med, "us",
                None, None, runs=per, p99=pct(per, 99))
        fig.add(f"N={n}: failoverd CPU/probe, net", net_med, "us",
                None, None, runs=net, p99=pct(net, 99))
        fig.add(f"N={n}: CPU/probe vs floor, raw", raw, "x")
        fig.add(f"N={n}: CPU/probe vs floor, net", ratio, "x", "<= 2.0x",
                ratio is not None and ratio <= 2.0)
        fig.add(f"N={n}: floor paced at {n}/s (context)", paced, "us")
        fig.add(f"N={n}: CPU/probe net vs paced floor", net_med / paced
                if net_med and paced else None, "x")
        if n == 10000:
            fig.add(f"N={n}: RSS", rss, "MB", "< 64 MB", hwm < 64,
                    peak=hwm, threads=threads)
        else:
            fig.add(f"N={n}: RSS", rss, "MB", None, None, peak=hwm,
                    threads=threads)
        fig.add(f"N={n}: RSS at startup, before checks", rss0, "MB")
        # The same services without checks: what the probes do not hold.
        fig.add(f"N={n}: RSS of the control daemon (not probing)", bg_rss,
                "MB")
        p50, p99 = pct(late, 50), pct(late, 99)
        fig.add(f"N={n}: jitter p50", p50, "ms", None, None,
                samples=len(late))
        fig.add(f"N={n}: jitter p99", p99, "ms",
                "< 5 ms" if n == 1000 else None,
                (p99 is not None and p99 < 5.0) if n == 1000 else None,
                samples=len(late), max=max(late) if late else None)
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    sizes = tuple(int(x) for x in sys.argv[1:]) or SIZES
    print_table([run(sizes)])
