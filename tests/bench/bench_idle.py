"""Benchmark 6: idle cost.

One service, one HTTP probe every 5 s against a loopback target, for one
minute: failoverd's CPU seconds and its wakeups (voluntary context
switches: each is a sleep in epoll_wait that ended). A busy loop or a
polling timer faster than needed shows as CPU and as wakeups far above
what the checks need (a check is a handful of wakeups: the timer, the
connect, the reply). The figures include what the daemon does besides
probing, so two daemons run side by side:
  - "dead AWS": the EC2 endpoint a dead loopback port (as for the other
    benchmarks): the failover engine and preflight retry their EC2 calls;
  - "ec2sim": the same service in ec2sim's basic world (its Elastic IP,
    instance and volumes exist), so EC2 answers as AWS would; the probe
    checks the instance's HTTP server through the Elastic IP.

It runs beside the other benchmarks (start() now, finish() at the end)
since it is idle by design and a minute is a tenth of run-all's budget;
its log goes to a file, and the sample is taken by a timer thread at
exactly 60 s."""
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from simfixture import BASIC, Ec2Sim  # noqa: E402
from benchlib import (OUT, Daemon, Figures, Targets, http_probe,  # noqa
                      service_conf)

ADDR = "127.65.0.1"
SECONDS = 60.0
INTERVAL = 5.0
WAKEUP_TARGET = 2.0     # per second: checks need ~0.6, the rest is slack


def sim_service(sim):
    return f"""{{ name = "web"; eip_allocation_id = "{BASIC['eip']}";
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}"; }};
    policy = {{ auto_failover = false; }};
    probes = ( {{ name = "http"; type = "http"; port = {sim.http_port};
      path = "/health"; interval = {INTERVAL}; timeout = 2; }} ); }}"""


class Idle:
    def __init__(self, world):
        self.world = world
        self.targets = self.sim = None
        os.makedirs(OUT, exist_ok=True)
        log = os.path.join(OUT, f"idle-{world}.log")
        if world == "ec2sim":
            work = tempfile.mkdtemp(prefix="fodbench-idle.")
            self.sim = Ec2Sim("basic", os.path.join(work, "sim"))
            self.sim.start()
            env = dict(self.sim.env())
            env["AWS_CONFIG_FILE"] = os.path.join(work, "no-aws-config")
            env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(
                work, "no-aws-credentials")
            self.d = Daemon([sim_service(self.sim)], workdir=work,
                            env=env, dead_aws=False, logfile=log,
                            aws="{ }")
        else:
            self.targets = Targets([ADDR])
            self.d = Daemon([service_conf(0, [http_probe(
                ADDR, INTERVAL, 2.0)])], logfile=log)
        # Let it settle: config loaded, preflight done, first checks.
        time.sleep(3.0)
        self.c0 = self.d.stat.cpu()[0]
        self.s0 = self.d.stat.switches()
        self.t0 = time.monotonic()
        self.sample = None
        self.timer = threading.Timer(SECONDS, self.take)
        self.timer.start()

    def take(self):
        self.sample = (self.d.stat.cpu()[0], self.d.stat.switches(),
                       time.monotonic(), self.d.stat.rss_mb()[0])

    def finish(self, fig):
        self.timer.join()
        self.d.stop()
        if self.targets:
            self.targets.close()
        if self.sim:
            self.sim.stop()
        c1, s1, t1, rss = self.sample
        dt = t1 - self.t0
        cpu = c1 - self.c0
        wake = (s1[0] - self.s0[0]) / dt
        with open(self.d.logfile) as f:
            log = f.read()
        w = self.world
        fig.add(f"{w}: CPU in one minute", cpu * 60 / dt, "s", None, None,
                seconds=dt)
        fig.add(f"{w}: wakeups per second", wake, "/s",
                f"< {WAKEUP_TARGET:g}/s", wake < WAKEUP_TARGET,
                voluntary=s1[0] - self.s0[0],
                involuntary=s1[1] - self.s0[1],
                ec2_retries_logged=log.count("Couldn't connect"))
        fig.add(f"{w}: RSS", rss, "MB")


def start():
    return [Idle("dead-aws"), Idle("ec2sim")]


def finish(handles):
    fig = Figures("idle")
    fig.note("service", "one service, one HTTP probe every "
             f"{INTERVAL:g} s, {SECONDS:g} s")
    for h in handles:
        h.finish(fig)
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([finish(start())])
