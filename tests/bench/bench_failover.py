"""Benchmark 5: the failover critical path.

ec2sim (scenario basic: one instance, two EBS data volumes, an Elastic
IP) with delays scaled from AWS's behaviour, each an argument:
  --launch 20 (pending -> running)   --stop 8 (forced stop)
  --detach 4   --attach 3   --associate 1
failoverd watches the service with one HTTP probe (interval 0.2 s,
timeout 0.15 s, fall 2, rise 2); the instance's listeners are broken
and the failover runs to its end. Reported, per run (REPS failovers,
each on its own ec2sim, run side by side):
  - total: failoverd's service_down line to its failover_completed line;
  - lower bound: what the delays allow, max(launch, fence + detach) +
    attach + associate + verify, where verify's least is (rise - 1)
    probe intervals (the checks that must pass on the replacement);
  - overhead = total - lower bound, and total / lower bound;
  - the sequential sum: what a one-step-at-a-time script waits, stop +
    launch + each volume's detach and attach + associate + verify.
Targets: overhead < 0.5 s, total / lower bound < 1.05."""
import argparse
import os
import re
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from benchlib import Daemon, Figures, log_stamp, median, pct  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

REPS = 3
PROBE_INTERVAL, PROBE_TIMEOUT, FALL, RISE = 0.2, 0.15, 2, 2
DEFAULTS = {"launch": 20.0, "stop": 8.0, "detach": 4.0, "attach": 3.0,
            "associate": 1.0}


def conf_service(sim):
    vols = BASIC["volumes"]
    return f"""{{
    name = "web";
    eip_allocation_id = "{BASIC['eip']}";
    volumes = (
      {{ id = "{vols['/dev/sdf']}"; device = "/dev/sdf"; }},
      {{ id = "{vols['/dev/sdg']}"; device = "/dev/sdg"; }}
    );
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}";
               security_groups = [ "{BASIC['security_group']}" ];
               key_name = "{BASIC['key_name']}"; }};
    probes = ( {{ name = "site"; type = "http"; port = {sim.http_port};
      path = "/health"; interval = {PROBE_INTERVAL};
      timeout = {PROBE_TIMEOUT}; fall = {FALL}; rise = {RISE}; }} );
    policy = {{ cooldown = 0; fence_timeout = 120; launch_timeout = 300;
               detach_timeout = 60; attach_timeout = 60;
               associate_timeout = 30; verify_timeout = 60; }};
  }}"""


def one(work, delays, out):
    """One failover; appends (total, engine fields) to out."""
    sim_delays = {"pending": delays["launch"], "stopping": delays["stop"],
                  "detach": delays["detach"], "attach": delays["attach"],
                  "associate": delays["associate"], "boot": 0.0,
                  "status_init": 0.0}
    lines = []
    with Ec2Sim("basic", os.path.join(work, "sim"),
                delays=sim_delays) as sim:
        env = dict(sim.env())
        env["AWS_CONFIG_FILE"] = os.path.join(work, "no-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(
            work, "no-aws-credentials")
        d = Daemon([conf_service(sim)], workdir=work, env=env,
                   dead_aws=False,
                   aws="{ calls_per_second = 100; burst = 100; "
                       "call_timeout = 10; }")
        try:
            d.wait_for(r"service web: healthy", 60, lines.append)
            sim.instance_fault(BASIC["instance"], "both")
            down = d.wait_for(r"event=service_down service=web", 30,
                              lines.append)
            done = d.wait_for(r"event=failover_(completed|failed)", 180,
                              lines.append)
        finally:
            d.stop()
    fields = dict(re.findall(r" (\w+)=([\d.]+)", done))
    out.append({"total": log_stamp(done) - log_stamp(down),
                "completed": "failover_completed" in done,
                "engine": fields, "line": done})


def run(delays=None):
    delays = dict(DEFAULTS, **(delays or {}))
    fig = Figures("failover")
    nvol = len(BASIC["volumes"])
    verify_min = (RISE - 1) * PROBE_INTERVAL
    bound = (max(delays["launch"], delays["stop"] + delays["detach"]) +
             delays["attach"] + delays["associate"] + verify_min)
    seq = (delays["stop"] + delays["launch"] +
           nvol * (delays["detach"] + delays["attach"]) +
           delays["associate"] + verify_min)
    results, threads = [], []
    for k in range(REPS):
        work = tempfile.mkdtemp(prefix=f"fodbench-failover{k}.")
        t = threading.Thread(target=one, args=(work, delays, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    ok = [r for r in results if r["completed"]]
    totals = [r["total"] for r in ok]
    fig.note("delays", delays)
    fig.note("runs", results)
    tot = median(totals)
    over = tot - bound if tot is not None else None
    ratio = tot / bound if tot is not None else None
    fig.add("failovers completed", len(ok), "", f"{REPS}",
            len(ok) == REPS)
    fig.add("total, service_down -> verified (median)", tot, "s", None,
            None, runs=totals, p99=pct(totals, 99))
    fig.add("lower bound the delays allow", bound, "s", None, None,
            formula="max(launch, fence + detach) + attach + associate"
            " + (rise-1) x probe interval")
    fig.add("overhead above the bound (median)", over, "s", "< 0.5 s",
            over is not None and over < 0.5,
            p99=(pct(totals, 99) - bound) if totals else None)
    fig.add("total / lower bound", ratio, "x", "< 1.05",
            ratio is not None and ratio < 1.05)
    fig.add("sequential sum (one step at a time)", seq, "s", None, None,
            note="stop + launch + each volume's detach and attach + "
            "associate + verify")
    if tot:
        fig.add("sequential sum / failoverd total", seq / tot, "x")
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k, type=float, default=v,
                        help=f"seconds (default {v:g})")
    ap.add_argument("--reps", type=int, default=REPS)
    a = ap.parse_args()
    REPS = a.reps
    print_table([run({k: getattr(a, k) for k in DEFAULTS})])
