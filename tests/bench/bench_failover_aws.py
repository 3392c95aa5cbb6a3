"""Benchmark 6: what a failover costs on AWS-like timing.

ec2sim (scenario basic: one instance, two EBS data volumes, an Elastic
IP) runs with --timing aws: each delay is drawn per event from the
ranges of tests/ec2sim/sim_timing.py (AWS documentation and published
measurements; see the "Timing" table of tests/ec2sim/README.md).
failoverd watches the site through the Elastic IP with an HTTP probe
and an SSH probe (interval 1 s, timeout 0.8 s, fall 2, rise 2), as
scripts/demo does; --http-only leaves the SSH probe out. The
instance's listeners are broken, and a client polls the site through
the Elastic IP until the replacement answers. Reported, the median of
REPS runs (each on its own ec2sim, side by side; each takes minutes,
hence 3):
  - the figure: break -> the site answers through the EIP from the
    replacement (an HTTP GET of /health, as a user would see it);
  - each step as failover_completed reports it (detect, fence,
    launch, detach, attach, associate, verify, total);
  - the critical path the engine computes from those steps,
    max(launch, fence + detach) + attach + associate + verify;
  - the bound this run's draws allowed: the same formula over what
    ec2sim's event log shows each transition took (launched ->
    running, stopping -> stopped, detaching -> detached, attaching ->
    attached, associated -> traffic moved), verify at its least
    ((rise - 1) probe intervals): what a client reacting at once
    would take; total - that bound is what failoverd's polling and
    calls add;
  - the bound the profile allows: the same formula over the profile's
    ranges (low, middle, high).
Nothing leaves 127.0.0.0/8: the EC2 endpoint and IMDS are the sim's,
named in the configuration, and checked before failoverd starts."""
import argparse
import ipaddress
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from benchlib import Daemon, Figures, log_stamp, median  # noqa: E402
from sim_timing import PROFILES  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

REPS = 3
PROFILE = "aws"
INTERVAL, TIMEOUT, FALL, RISE = 1.0, 0.8, 2, 2
STEPS = ("detect", "fence", "launch", "detach", "attach", "associate",
         "verify", "total", "critical_path")
# Long enough for the slowest draw of every range (fence covers a
# graceful stop on a hung OS, launch covers console output buffering).
POLICY = ("cooldown = 0; fence_timeout = 600; launch_timeout = 900; "
          "detach_timeout = 180; attach_timeout = 180; "
          "associate_timeout = 180; verify_timeout = 300;")
RUN_LIMIT = 1500


def loopback(url):
    """Refuses a URL whose host is not in 127.0.0.0/8."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if ipaddress.ip_address(host) not in ipaddress.ip_network(
            "127.0.0.0/8"):
        raise RuntimeError(f"benchmark: {url} is not on loopback")
    return url


def conf_service(sim, http_only):
    vols = BASIC["volumes"]
    probes = [f"""{{ name = "site"; type = "http"; port = {sim.http_port};
      path = "/health"; interval = {INTERVAL}; timeout = {TIMEOUT};
      fall = {FALL}; rise = {RISE}; }}"""]
    if not http_only:
        probes.append(f"""{{ name = "shell"; type = "ssh";
      port = {sim.ssh_port}; user = "{sim.ssh_user}";
      key_file = "{sim.ssh_key}"; interval = {INTERVAL};
      timeout = {TIMEOUT}; fall = {FALL}; rise = {RISE}; }}""")
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
    probes = ( {", ".join(probes)} );
    policy = {{ {POLICY} }};
  }}"""


def draws_bound(events, old, new):
    """The critical path of this run's draws, from the sim's events:
    (bound, {transition: seconds}); None where an event is missing."""
    first = {}
    for e in events:
        first.setdefault(e["event"], e["time"])

    def span(start, end):
        a = [t for k, t in first.items() if start.search(k)]
        b = [t for k, t in first.items() if end.search(k)]
        return max(b) - min(a) if a and b else None

    vol = r"volume vol-[0-9a-f]+: "
    d = {"launch": span(re.compile(rf"instance {new}: launched"),
                        re.compile(rf"instance {new}: pending -> running")),
         "fence": span(re.compile(rf"instance {old}: running -> stopping"),
                       re.compile(rf"instance {old}: stopping -> stopped")),
         "detach": span(re.compile(vol + f"detaching from {old}"),
                        re.compile(vol + f"detached from {old}")),
         "attach": span(re.compile(vol + f"attaching to {new}"),
                        re.compile(vol + f"attached to {new}")),
         "associate": span(re.compile(r"address \S+: associated with "
                                      + new),
                           re.compile(r"address \S+ -> " + new))}
    if None in d.values():
        return None, d
    return (max(d["launch"], d["fence"] + d["detach"]) + d["attach"] +
            d["associate"] + (RISE - 1) * INTERVAL), d


def answered_by(url):
    """The instance id the site answers from, or None."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read().decode(errors="replace").split()
            return body[-1] if r.status == 200 and body else None
    except OSError:
        return None


def one(work, http_only, out):
    """One failover on its own sim; appends its figures to out."""
    lines = []
    res = {"completed": False}
    try:
        with Ec2Sim("basic", os.path.join(work, "sim"),
                    timing=PROFILE, start_timeout=60) as sim:
            env = dict(sim.env())
            for u in (sim.endpoint, sim.imds):
                loopback(u)
            eip = sim.address(BASIC["eip"])["ip"]
            site = loopback(f"http://{eip}:{sim.http_port}/health")
            d = Daemon([conf_service(sim, http_only)], workdir=work,
                       env=env, dead_aws=False,
                       aws=f'{{ endpoint = "{sim.endpoint}"; '
                           f'imds_endpoint = "{sim.imds}"; '
                           'calls_per_second = 20; burst = 20; '
                           'call_timeout = 10; }')
            try:
                d.wait_for(r"service web: healthy", 300, lines.append)
                assert answered_by(site) == BASIC["instance"]
                broke = time.time()
                sim.instance_fault(BASIC["instance"], "both")
                down = d.wait_for(r"event=service_down service=web", 120,
                                  lines.append)
                # The client's view: poll the site through the EIP while
                # reading failoverd's log, until the replacement answers.
                answered, done = None, None
                end = time.monotonic() + RUN_LIMIT
                while time.monotonic() < end and (answered is None or
                                                  done is None):
                    if answered is None:
                        who = answered_by(site)
                        if who and who != BASIC["instance"]:
                            answered = time.time()
                    for line in d.read(0.2):
                        lines.append(line)
                        if re.search(r"event=failover_(completed|failed)",
                                     line):
                            done = line
                res["break_to_down"] = log_stamp(down) - broke
                if answered is not None:
                    res["break_to_site"] = answered - broke
                if done is not None:
                    res["completed"] = "failover_completed" in done
                    m = re.search(r" new_instance=(i-[0-9a-f]+)", done)
                    if m:
                        res["draws_bound"], res["draws"] = draws_bound(
                            sim._call("GET", "/events"),
                            BASIC["instance"], m.group(1))
                    res["engine"] = {k: float(v) for k, v in re.findall(
                        r" (\w+)=([\d.]+)(?= |$)", done) if k in STEPS}
                    res["line"] = done
            finally:
                d.stop()
    except Exception as e:  # a run that broke is reported, not fatal
        res["error"] = f"{type(e).__name__}: {e}"
    res["log_tail"] = lines[-15:]
    out.append(res)


def profile_bound(http_only):
    """The critical-path formula over the profile's ranges: (low, mid,
    high); verify at its least, rise - 1 probe intervals."""
    p = PROFILES[PROFILE]
    verify = (RISE - 1) * INTERVAL

    def at(f):
        v = {k: p[k][0] + f * (p[k][1] - p[k][0]) for k in p}
        launch = v["pending"] + v["boot"]
        fence = v["stopping"]
        return (max(launch, fence + v["detach"]) + v["attach"] +
                v["associate"] + verify)
    return at(0.0), at(0.5), at(1.0)


def run(reps=None, http_only=False):
    reps = reps or REPS
    name = "failover_aws" + ("_http" if http_only else "")
    fig = Figures(name)
    results, threads = [], []
    for k in range(reps):
        work = tempfile.mkdtemp(prefix=f"fodbench-aws{k}.")
        t = threading.Thread(target=one, args=(work, http_only, results))
        t.start()
        threads.append(t)
        time.sleep(2)   # the sims pick their nets one after the other
    for t in threads:
        t.join()
    ok = [r for r in results if r["completed"]]
    fig.note("profile", {k: list(v[:2]) for k, v in
                         PROFILES[PROFILE].items()})
    fig.note("probes", "http" if http_only else "http+ssh")
    fig.note("runs", results)
    fig.add("failovers completed", len(ok), "", f"{reps}",
            len(ok) == reps)
    site = [r["break_to_site"] for r in ok if "break_to_site" in r]
    fig.add("break -> site answers via EIP from the replacement (median)",
            median(site), "s", None, None, runs=site)
    fig.add("break -> service_down (median)",
            median([r["break_to_down"] for r in ok]), "s")
    for step in STEPS:
        vals = [r["engine"][step] for r in ok if step in r.get("engine",
                                                              {})]
        fig.add(f"step {step} (median)", median(vals), "s", None, None,
                runs=vals)
    bounds = [r["draws_bound"] for r in ok if r.get("draws_bound")]
    fig.add("bound this run's draws allowed (median)", median(bounds),
            "s", None, None, runs=bounds)
    over = [r["engine"]["total"] - r["draws_bound"] for r in ok
            if r.get("draws_bound") and "total" in r.get("engine", {})]
    fig.add("total - that bound: what failoverd adds (median)",
            median(over), "s", None, None, runs=over)
    lo, mid, hi = profile_bound(http_only)
    fig.add("bound the profile allows (middle of its ranges)", mid, "s",
            None, None, low=lo, high=hi,
            formula="max(pending + boot, stopping + detach) + attach + "
            "associate + (rise-1) x probe interval")
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument("--http-only", action="store_true",
                    help="watch the site with the HTTP probe alone")
    a = ap.parse_args()
    f = run(a.reps, a.http_only)
    print_table([f])
    for r in f.data["runs"]:
        if not r["completed"]:
            print("run failed:", r.get("error") or r.get("line"),
                  *r["log_tail"], sep="\n  ")
