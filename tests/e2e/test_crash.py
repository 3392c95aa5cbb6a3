"""Crash at every point (issue 9): failoverd dies right after each journal
write of a failover (FAILOVERD_CRASH_AFTER_JOURNAL_WRITE=k), or is
SIGKILLed at a random moment, and a restart without the hook must end
exactly where a crash-free failover ends: one replacement (one
ClientToken, one failoverd-tagged instance per failover, across every
instance ever launched), each volume attached once to it, the EIP on it,
the old instance stopped, nothing else running.

The runs are chained in one ec2sim (see drill.py). Counts: every k in
the normal build, a seeded sample of them under the sanitizers (CI's
time budget); FOD_DRILL_RUNS=sigkill=N for the random kills (5 in CI,
50 from tests/drills/run-full)."""
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import drill  # noqa: E402
from conftest import (OLD, assert_replaced, calls,  # noqa: E402
                      healthy, replacement, start)

HOOK = "FAILOVERD_CRASH_AFTER_JOURNAL_WRITE"
HEALTHY = r"service web: healthy"
COMPLETED = r"event=failover_completed"


def seq(w):
    return int(drill.journal(w.state_dir).get("seq", 0))


def crash_free_failover(w):
    """One failover without a crash: (journal writes it made, seconds
    from breaking the instance to failover_completed)."""
    run = w.begin()
    before = seq(w)
    with w.daemon() as d:
        d.wait_for(HEALTHY, timeout=30)
        t0 = time.monotonic()
        w.break_production()
        d.wait_for(COMPLETED, timeout=90)
        took = time.monotonic() - t0
        # The step's own save comes right after the alert.
        d.drain(0.5)
        writes = seq(w) - before
    w.assert_replaced(run)
    return writes, took


def finish(w, run, broke):
    """Restarts failoverd without the hook and lets it finish what the
    crashed one began; then the state must be the crash-free one."""
    step = drill.journal(w.state_dir).get("step", "idle")
    with w.daemon() as d:
        if not broke:
            d.wait_for(HEALTHY, timeout=30)
            w.break_production()
            d.wait_for(COMPLETED, timeout=90)
        elif step == "done":
            # It died after the failover: the replacement just serves.
            d.wait_for(HEALTHY, timeout=30)
        else:
            if step not in ("idle", "corroborate"):
                d.wait_for(r"resuming failover", timeout=15)
            d.wait_for(COMPLETED, timeout=90)
        d.drain(0.3)
    w.assert_replaced(run)
    return step


def crash_after_write(w, k):
    """A failover whose daemon aborts right after its k-th journal
    write; returns (journal step it died at or None, step at restart)."""
    run = w.begin()
    d = w.daemon(env={HOOK: str(k)})
    broke = False
    done_at = None
    try:
        d.wait_for(HEALTHY + r"|test hook", timeout=30)
        if d.proc.poll() is None and \
                not any("test hook" in x for x in d.lines):
            w.break_production()
            broke = True
        end = time.monotonic() + 90
        while d.proc.poll() is None and time.monotonic() < end:
            d.drain(0.2)
            if done_at is None and any("event=failover_completed" in x
                                       for x in d.lines):
                done_at = time.monotonic()
            # This run wrote fewer than k times: nothing left to crash.
            if done_at is not None and time.monotonic() - done_at > 2:
                break
        rc = d.proc.poll()
    finally:
        drill.kill(d)
    if rc is not None:
        assert rc == -signal.SIGABRT, "exit %s; log:\n%s" % (
            rc, "\n".join(d.lines[-50:]))
        assert any("aborting after journal write" in x for x in d.lines)
    step = finish(w, run, broke)
    return rc is not None, step


def test_a_crash_after_every_journal_write_ends_like_no_crash(tmp_path):
    with drill.World(tmp_path) as w:
        # The first run also writes the journal's first version; the
        # second counts what a failover writes from a running daemon.
        crash_free_failover(w)
        writes, _ = crash_free_failover(w)
        assert writes >= 5
        ks = list(range(1, writes + 1))
        if drill.sanitized_build() and not drill.full_runs():
            ks = sorted(random.Random(9).sample(ks, min(4, len(ks))))
        endings = {}
        crashed = 0
        for k in ks:
            died, step = crash_after_write(w, k)
            crashed += died
            key = ("crash at " + step) if died else "no crash (fewer writes)"
            endings[key] = endings.get(key, 0) + 1
        drill.tally("crash-after-journal-write (writes=%d)" % writes,
                    endings)
        # The number of writes varies a little with polling; nearly
        # every k must have found a write to die after.
        assert crashed >= len(ks) - 2, endings


def test_sigkill_at_random_moments_ends_like_no_crash(tmp_path):
    n = drill.runs("sigkill", 5, sanitized_default=2)
    with drill.World(tmp_path) as w:
        _, took = crash_free_failover(w)
        endings = {}
        for i in range(n):
            rnd = random.Random(1000 + i)
            delay = rnd.uniform(0, took * 1.2)
            run = w.begin()
            d = w.daemon()
            try:
                d.wait_for(HEALTHY, timeout=30)
                w.break_production()
                d.drain(delay)
            finally:
                drill.kill(d)
            step = finish(w, run, broke=True)
            endings[step] = endings.get(step, 0) + 1
        drill.tally("sigkill (killed at journal step)", endings)


# --- a resumed launch whose lookup fails ---------------------------------

def _kill_in_the_launch_window(tmp_path, sim):
    """SIGKILL while RunInstances is in flight: the restart does not
    know whether the launch happened and must look it up."""
    d = start(tmp_path, sim)
    try:
        healthy(d)
        # The reply comes 8 s late: time for the request to reach the
        # sim, which carries it out after the daemon is gone.
        sim.fault(kind="latency", action="RunInstances", latency=8,
                  count=1)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"ec2: RunInstances attempt 1$", timeout=30)
        d.drain(3)
        d.proc.kill()
    finally:
        d.stop(check=False)
    # The launch did happen: EC2 carried it out behind the dead reply.
    sim.wait(lambda: replacement(sim), timeout=20, what="launched")
    # ...and logged it: a later clear_requests must not miss it.
    sim.wait(lambda: calls(sim, "RunInstances"), timeout=10,
             what="RunInstances logged")


def _token_lookups(sim):
    return [r for r in sim.requests("DescribeInstances")
            if r["params"].get("Filter.1.Name") == "client-token"]


def _tag_lookups(sim):
    return [r for r in sim.requests("DescribeInstances")
            if r["params"].get("Filter.1.Name") ==
            "tag:failoverd:failover-id"]


def test_resume_finds_the_replacement_by_tag_when_the_token_lookup_fails(
        tmp_path):
    from simfixture import Ec2Sim
    # About the tag fallback, not about lag: the replacement launched
    # before the kill must be visible to Describe at once.
    with Ec2Sim("basic", tmp_path / "sim",
                delays={"describe_lag": 0.0}) as sim:
        _kill_in_the_launch_window(tmp_path, sim)
        # This endpoint does not answer the client-token filter.
        sim.fault(kind="error", action="DescribeInstances",
                  code="InvalidParameterValue", count=None,
                  message="The filter 'client-token' is invalid",
                  match={"Filter.1.Name": "client-token"})
        sim.clear_requests()
        with start(tmp_path, sim) as d2:
            d2.wait_for(r"resuming failover", timeout=10)
            d2.wait_for(r"found replacement i-[0-9a-f]+ by its "
                        r"failoverd:failover-id tag", timeout=30)
            d2.wait_for(COMPLETED, timeout=60)
            assert_replaced(sim)
        assert _token_lookups(sim) and _tag_lookups(sim)
        # Found, not launched again.
        assert not calls(sim, "RunInstances")


def test_resume_lookup_failing_for_good_relaunches_with_the_same_token(
        tmp_path):
    from simfixture import Ec2Sim
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        _kill_in_the_launch_window(tmp_path, sim)
        first = {r["params"]["ClientToken"]
                 for r in calls(sim, "RunInstances")}
        assert len(first) == 1
        # Neither filter is answered, ever.
        for name in ("client-token", "tag:failoverd:failover-id"):
            sim.fault(kind="error", action="DescribeInstances",
                      code="InvalidParameterValue", count=None,
                      match={"Filter.1.Name": name})
        sim.clear_requests()
        with start(tmp_path, sim) as d2:
            d2.wait_for(r"resuming failover", timeout=10)
            d2.wait_for(r"looking up the replacement failed \d+ times",
                        timeout=30)
            d2.wait_for(COMPLETED, timeout=60)
            assert_replaced(sim)      # one replacement, not two
        again = {r["params"]["ClientToken"]
                 for r in calls(sim, "RunInstances")}
        assert again == first            # idempotent: the same token
        assert _token_lookups(sim) and _tag_lookups(sim)
