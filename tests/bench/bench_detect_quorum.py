"""Cluster benchmark 2: detection latency with a quorum (issue 15).

The same target and probe settings twice: ec2sim's basic world, the
demo's service (one HTTP probe through the EIP, interval 1 s, timeout
0.8 s, fall 2), watched first by one failoverd (no cluster group), then
by three members sharing a 3-member etcd (quorum: majority). REPS
times, the production instance's web server is stopped (ec2sim's
http_down fault, applied by the control call whose return is the start
of the measurement) and the time to the failover_started line (the
leader's, in a cluster) is taken; the failover then completes and the
replacement is the next one broken. The quorum may cost at most one
probe interval plus etcd's round trip (measured here: a put and a range
through the v3 HTTP gateway, as failoverd makes them)."""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Figures, median  # noqa: E402
from habench import Etcd, Members, sim_service, start_sim  # noqa: E402
from simfixture import BASIC  # noqa: E402

REPS = 5
INTERVAL = 1.0


def series(endpoints, names, prefix):
    work = tempfile.mkdtemp(prefix="fodbench-dq.")
    sim, env = start_sim(work)
    m = None
    lat = []
    try:
        m = Members(work, [sim_service(sim, interval=INTERVAL)], endpoints,
                    names=names, prefix=prefix, env=env, sim=True)
        for n in names:
            m.wait(r"service web: healthy|event=service_recovered", [n],
                   timeout=90)
        if endpoints:
            m.wait(r"event=cluster_leader_gained", timeout=60)
        for _ in range(REPS):
            # Every member has seen the replacement healthy (rise 2).
            time.sleep(2 * INTERVAL + 2)
            victim = sim.address(BASIC["eip"])["instance"]
            sim.instance_fault(victim, "http_down")
            t = time.time()
            t_start = m.wait(r"event=failover_started", after=t,
                             timeout=60)[0]
            lat.append(t_start - t)
            m.wait(r"event=failover_completed", after=t_start - 0.01,
                   timeout=120)
    finally:
        if m:
            m.stop()
        sim.stop()
    return lat


def run():
    fig = Figures("detect_quorum")
    single = series(None, ["solo"], None)
    etcd = Etcd()
    try:
        rtt_put, rtt_get = etcd.rtt()
        cluster = series(etcd.endpoints, ["alpha", "bravo", "charlie"],
                         "/fodbench-dq")
    finally:
        etcd.stop()
    fig.note("single", single)
    fig.note("cluster", cluster)
    fig.note("rtt_put", rtt_put)
    fig.note("rtt_range", rtt_get)
    ms, mc = median(single), median(cluster)
    bound = INTERVAL + rtt_put
    fig.add("single member: break -> failover_started, median", ms, "s")
    fig.add("3 members: break -> failover_started, median", mc, "s")
    fig.add("3 members: max", max(cluster or [0]), "s")
    fig.add("etcd round trip (put / range, median)",
            f"{rtt_put * 1000:.1f} / {rtt_get * 1000:.1f}", "ms")
    diff = None if ms is None or mc is None else mc - ms
    fig.add("quorum's cost (median difference)", diff, "s",
            f"<= interval + put = {bound:.3f} s",
            diff is not None and diff <= bound)
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([run()])
