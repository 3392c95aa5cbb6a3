"""Cluster benchmark 1: takeover time (issue 15).

Three failoverd members share a 3-member etcd (lease_ttl 4 s) and watch
ec2sim's basic world (the demo's service: an HTTP probe through the EIP,
two data volumes). The instance is broken; the leader starts the
failover and is SIGKILLed once it has entered each step in turn
(fence+launch, detach, attach, associate, verify: one fresh world per
kill point; ec2sim's delays make every step last about two seconds so
that the kill lands inside it). Measured: from the kill to the new
leader's first step (its cluster_takeover or failover_step line), and
to the failover's completion. The new leader must wait for the dead
one's lease to expire, so the figure is bounded by the lease TTL plus
one poll; the figures are printed against the TTL."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Figures, median  # noqa: E402
from habench import Etcd, Members, sim_service, start_sim  # noqa: E402
from simfixture import BASIC  # noqa: E402

LEASE_TTL = 4
STEPS = ["fence+launch", "detach", "attach", "associate", "verify"]
DELAYS = {"pending": 2.0, "stopping": 2.0, "detach": 2.0, "attach": 2.0,
          "associate": 2.0}


def one(etcd, step, k):
    work = tempfile.mkdtemp(prefix="fodbench-takeover.")
    sim, env = start_sim(work)
    m = None
    try:
        sim.set_delays(**DELAYS)
        m = Members(work, [sim_service(sim)], etcd.endpoints,
                    prefix=f"/fodbench-takeover-{k}", lease_ttl=LEASE_TTL,
                    env=env, sim=True)
        for n in m.names:
            m.wait(r"service web: healthy|event=service_recovered", [n],
                   timeout=90)
        _, leader, _ = m.wait(r"event=cluster_leader_gained", timeout=60)
        sim.instance_fault(BASIC["instance"], "both")
        m.wait(r"event=failover_step .*step=" + step.replace("+", r"\+"),
               [leader], timeout=90)
        if m.find(r"event=failover_completed", [leader]):
            raise RuntimeError(f"completed before the kill at {step}")
        t_kill = m.kill(leader)
        others = [n for n in m.names if n != leader]
        t_first, new, line = m.wait(
            r"event=cluster_takeover|event=failover_step ", others,
            after=t_kill - 0.01, timeout=LEASE_TTL * 10)
        t_done = m.wait(r"event=failover_completed", [new], timeout=120)[0]
        st = sim.state()
        replacements = [i for i in st["instances"] if i != BASIC["instance"]]
        return {"step": step, "leader": leader, "new_leader": new,
                "to_first_step": t_first - t_kill,
                "to_completed": t_done - t_kill,
                "first_line": line.split("event=", 1)[-1],
                "replacements": len(replacements)}
    finally:
        if m:
            m.stop()
        sim.stop()


def run():
    fig = Figures("takeover")
    etcd = Etcd()
    runs = []
    try:
        for k, step in enumerate(STEPS):
            try:
                r = one(etcd, step, k)
            except RuntimeError as e:
                r = {"step": step, "error": str(e)}
            print(f"  killed in {step}: {r}", flush=True)
            runs.append(r)
    finally:
        etcd.stop()
    good = [r for r in runs if "error" not in r]
    first = [r["to_first_step"] for r in good]
    done = [r["to_completed"] for r in good]
    fig.note("runs", runs)
    fig.note("lease_ttl", LEASE_TTL)
    fig.add("kill -> new leader's first step, median",
            median(first), "s", f"< TTL {LEASE_TTL} s + 1 s",
            bool(first) and median(first) < LEASE_TTL + 1)
    fig.add("kill -> new leader's first step, max", max(first or [0]),
            "s", f"< TTL {LEASE_TTL} s + 1 s",
            bool(first) and max(first) < LEASE_TTL + 1)
    fig.add("kill -> failover completed, median", median(done), "s")
    fig.add("kill points that ended well", len(good), "",
            f"{len(STEPS)}, one replacement each",
            len(good) == len(STEPS) and
            all(r["replacements"] == 1 for r in good))
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([run()])
