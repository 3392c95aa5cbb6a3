"""What the reliability drills of issue 9 share: a world (one ec2sim and
one state directory) in which failover after failover runs, each from
whatever instance the Elastic IP is on, and the checks of what a person
relies on after each of them.

Runs are chained rather than each given a fresh ec2sim: the production
instance is whatever the EIP is associated with, so the replacement of
one run is the production instance the next run breaks. Every instance
ec2sim ever launched stays in its state, which lets the checks count
replacements across every run: one per failover, never two.

FOD_DRILL_RUNS scales the drills: unset (CI) the counts are small;
tests/drills/run-full sets the full ones."""
import json
import os
import re
import signal
import time

from fodtest import Daemon, known_library_leak_only, sanitized_build
from simfixture import BASIC, Ec2Sim
import conftest

VOLS = BASIC["volumes"]          # device -> volume id
EIP = BASIC["eip"]
SCENARIO_INSTANCES = {BASIC["instance"]}


def runs(name, ci_default, sanitized_default=None):
    """How many runs the drill name does: FOD_DRILL_RUNS is either one
    number for every drill or name=N,name=N (e.g. sigkill=50,chaos=200).
    Without it, CI's counts; fewer in the sanitizer build, which repeats
    the same code paths for memory errors, not for more seeds."""
    spec = os.environ.get("FOD_DRILL_RUNS", "").strip()
    if not spec:
        if sanitized_default is not None and sanitized_build():
            return sanitized_default
        return ci_default
    if re.fullmatch(r"\d+", spec):
        return int(spec)
    for part in spec.split(","):
        k, _, v = part.partition("=")
        if k.strip() == name:
            return int(v)
    return ci_default


def full_runs():
    """True when run-full asked for the full counts."""
    return bool(os.environ.get("FOD_DRILL_RUNS", "").strip())


def tally(name, counts):
    """Prints the endings of a drill (pytest -s or run-full shows it)."""
    items = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"\n[drill {name}] {sum(counts.values())} runs: {items}",
          flush=True)
    out = os.environ.get("FOD_DRILL_TALLY")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"drill": name, "counts": counts}) + "\n")


def journal(state_dir, name="web"):
    """The journal's fields (key -> value), {} when there is none."""
    path = os.path.join(state_dir, f"{name}.journal")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines()[1:]:
        k, _, v = line.partition("=")
        out[k] = v
    return out


class DrillDaemon(Daemon):
    """fodtest's Daemon, but the one known libssh2 leak is counted
    (known_leaks) instead of failing the run."""
    known_leaks = 0

    def check_exit(self, rc):
        if (rc != 0 or self.sanitizer_report()) and \
                known_library_leak_only(self.lines):
            DrillDaemon.known_leaks += 1
            print("\n[drill] libssh2 1.10 kex leak reported (known, "
                  "let through)", flush=True)
            return
        super().check_exit(rc)


class World:
    """One ec2sim and one state directory for a chain of failovers."""

    def __init__(self, base, policy=None, call_timeout=None, probes=None):
        self.base = str(base)
        self.policy = {"cooldown": 0, "max_failovers": 1000,
                       "window": 1}
        self.policy.update(policy or {})
        self.call_timeout = call_timeout
        self.probes = probes or ("site", "shell")
        self.sim = None
        self.generation = 0

    # -- lifecycle ---------------------------------------------------------

    def open(self):
        """A fresh ec2sim and an empty state directory."""
        self.close()
        self.generation += 1
        self.dir = os.path.join(self.base, f"w{self.generation}")
        os.makedirs(self.dir)
        self.sim = Ec2Sim("basic", os.path.join(self.dir, "sim"))
        self.sim.start()
        aws = {} if self.call_timeout is None else {"aws": {
            "calls_per_second": 100, "burst": 100,
            "call_timeout": self.call_timeout}}
        self.conf = conftest.write_conf(self.dir, self.sim,
                                        policy=self.policy,
                                        probes=self.probes, top=aws)
        self.state_dir = os.path.join(self.dir, "state")
        return self

    def close(self):
        if self.sim is not None:
            self.sim.stop()
            self.sim = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def daemon(self, env=None):
        e = dict(self.sim.env())
        # failoverd refuses world-writable credential files (/dev/null).
        e["AWS_CONFIG_FILE"] = os.path.join(self.dir, "no-aws-config")
        e["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(
            self.dir, "no-aws-credentials")
        e.update(env or {})
        d = DrillDaemon(self.conf, env=e)
        d.sock = os.path.join(self.dir, "control.sock")
        return d

    # -- what stands -------------------------------------------------------

    def production(self):
        """The instance the EIP is associated with."""
        return self.sim.address(EIP)["instance"]

    def instances(self):
        return self.sim.state()["instances"]

    def last_seq(self):
        reqs = self.sim.requests()
        return reqs[-1]["seq"] if reqs else 0

    def begin(self):
        """Marks the start of a run: what exists, where the log is."""
        return {"instances": set(self.instances()),
                "old": self.production(), "seq": self.last_seq()}

    def break_production(self):
        self.sim.instance_fault(self.production(), "both")

    # -- checks ------------------------------------------------------------

    def calls(self, action, since=0, ok=False):
        """The real (not DryRun) requests for action after seq since;
        with ok, only those EC2 carried out (status 200)."""
        return [r for r in self.sim.requests(action, since=since)
                if str(r["params"].get("DryRun", "")).lower() != "true"
                and (not ok or r["status"] == 200)]

    def assert_one_replacement_each(self):
        """Across every run so far: each instance failoverd launched has
        its own failover id and ClientToken, and every ClientToken sent
        launched exactly one instance."""
        st = self.sim.state()
        launched = [i for i in st["instances"].values()
                    if i["id"] not in SCENARIO_INSTANCES]
        ids = [i["tags"].get("failoverd:failover-id") for i in launched]
        assert all(ids), json.dumps(launched, indent=1)
        assert len(set(ids)) == len(ids), \
            "two instances for one failover: %s" % ids
        for i in launched:
            assert i["tags"].get("failoverd:service") == "web", i
        tokens = {r["params"]["ClientToken"]
                  for r in self.calls("RunInstances")}
        assert tokens == set(ids), (tokens, ids)
        return launched

    def assert_replaced(self, run, strict_attach=True):
        """The crash-free final state of one run: exactly one new
        instance, running from the AMI in the volumes' AZ, each volume
        attached to it once at its device, the EIP on it, the old one
        stopped, nothing else running."""
        st = self.sim.state()
        new = [i for i in st["instances"].values()
               if i["id"] not in run["instances"]]
        assert len(new) == 1, json.dumps(st["instances"], indent=1)
        new = new[0]
        assert new["state"] == "running", new
        assert new["image"] == BASIC["image"]
        assert new["az"] == BASIC["az"]
        for dev, vid in VOLS.items():
            assert new["volumes"].get(dev) == vid, new["volumes"]
            assert st["volumes"][vid]["attachment"]["state"] == "attached"
        assert st["addresses"][EIP]["instance"] == new["id"]
        assert st["instances"][run["old"]]["state"] == "stopped"
        running = [i["id"] for i in st["instances"].values()
                   if i["state"] in ("pending", "running")]
        assert running == [new["id"]], "orphaned: %s" % running
        if strict_attach:
            done = [r["params"]["VolumeId"] for r in
                    self.calls("AttachVolume", run["seq"], ok=True)]
            assert sorted(done) == sorted(VOLS.values()), done
            for r in self.calls("AttachVolume", run["seq"], ok=True):
                assert r["params"]["InstanceId"] == new["id"], r
        self.assert_one_replacement_each()
        return new

    def assert_consistent(self, run):
        """What any ending must leave: the EIP on an instance, at most
        one replacement, and never a replacement running while a data
        volume is attached nowhere (a failed failover stops its idle
        replacement; the stop may take a moment to be seen)."""
        deadline = time.monotonic() + 20
        while True:
            st = self.sim.state()
            eip_on = st["addresses"][EIP]["instance"]
            assert eip_on, \
                "EIP unassociated: %s" % json.dumps(st["addresses"][EIP])
            new = [i for i in st["instances"].values()
                   if i["id"] not in run["instances"]]
            assert len(new) <= 1, json.dumps(st["instances"], indent=1)
            free = [vid for vid in VOLS.values()
                    if st["volumes"][vid]["attachment"] is None]
            runs = new and new[0]["state"] in ("pending", "running")
            if not (runs and free):
                break
            assert time.monotonic() < deadline, \
                "volumes %s attached nowhere while the replacement %s " \
                "runs (EIP on %s): %s" % (free, new[0]["id"], eip_on,
                                          json.dumps(st["volumes"]))
            time.sleep(0.2)
        self.assert_one_replacement_each()


def kill(d):
    """SIGKILL, and read what it logged until then."""
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGKILL)
    d.stop(check=False)


def wait_exit(d, timeout):
    """Reads the log until the daemon exits; returns its status."""
    end = time.monotonic() + timeout
    while d.proc.poll() is None and time.monotonic() < end:
        d.drain(0.2)
    d.drain(0)
    return d.proc.poll()
