"""No mutating EC2 call without a durable journal record before it
(issue 13): the state directory on a small tmpfs is made read-only, or
filled, while production fails. failoverd must say so at crit
(journal_write_failed), take no step while it cannot write, and go on
once it can; a daemon killed while it could not write must, after a
restart, make exactly one replacement, never a second one under a new
ClientToken.

The tmpfs needs root (mount); without it the tests skip and say why."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import drill  # noqa: E402

HEALTHY = r"service web: healthy"
COMPLETED = r"event=failover_completed"
MUTATING = ("StopInstances", "RunInstances", "DetachVolume", "AttachVolume",
            "AssociateAddress")


def _mount(*args):
    return subprocess.run(["mount", *args], capture_output=True, text=True)


class SmallDisk:
    """A 1 MiB tmpfs over a directory, that a test can fill or make
    read-only and give back."""

    def __init__(self, path):
        self.path = path
        self.filler = os.path.join(path, "filler")
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        r = _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", path)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")

    def break_it(self, how):
        if how == "read_only":
            r = _mount("-o", "remount,ro", self.path)
            assert r.returncode == 0, r.stderr
            return
        with open(self.filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def mend(self, how):
        if how == "read_only":
            r = _mount("-o", "remount,rw", self.path)
            assert r.returncode == 0, r.stderr
        else:
            os.unlink(self.filler)

    def close(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def world(tmp_path):
    with drill.World(tmp_path) as w:
        disk = SmallDisk(w.state_dir)
        try:
            yield w, disk
        finally:
            disk.close()


def mutating_calls(w, since):
    return [r["action"] for a in MUTATING for r in w.calls(a, since)]


@pytest.mark.parametrize("how", ["read_only", "full"])
def test_no_step_without_a_durable_record_then_it_goes_on(world, how):
    w, disk = world
    run = w.begin()
    with w.daemon() as d:
        d.wait_for(HEALTHY, timeout=30)
        disk.break_it(how)
        w.break_production()
        line = d.wait_for(r"event=journal_write_failed service=web",
                          timeout=60)
        assert w.state_dir in line, line
        # The failover holds: DOWN is seen, nothing is changed in EC2.
        d.wait_for(r"event=failover_started", timeout=30)
        d.drain(3.0)
        assert mutating_calls(w, run["seq"]) == [], \
            w.sim.requests(since=run["seq"])
        assert sum("event=journal_write_failed" in l
                   for l in d.lines) == 1, "said once, not every tick"
        disk.mend(how)
        d.wait_for(r"event=journal_write_ok service=web", timeout=30)
        d.wait_for(COMPLETED, timeout=120)
        d.drain(0.5)
    w.assert_replaced(run)


def test_a_restart_after_failed_writes_launches_one_replacement(world):
    w, disk = world
    run = w.begin()
    d = w.daemon()
    try:
        d.wait_for(HEALTHY, timeout=30)
        disk.break_it("read_only")
        w.break_production()
        d.wait_for(r"event=journal_write_failed service=web", timeout=60)
        d.wait_for(r"event=failover_started", timeout=30)
        d.drain(2.0)
    finally:
        drill.kill(d)
    assert mutating_calls(w, run["seq"]) == []
    disk.mend("read_only")
    with w.daemon() as d:
        d.wait_for(COMPLETED, timeout=120)
        d.drain(0.5)
    w.assert_replaced(run)
    assert len(w.calls("RunInstances", run["seq"])) >= 1
    tokens = {r["params"]["ClientToken"]
              for r in w.calls("RunInstances", run["seq"])}
    assert len(tokens) == 1, tokens


def test_a_disk_that_fails_while_the_replacement_boots_holds_then_completes(
        world):
    """The replacement is launched, then the state directory goes
    read-only before failoverd writes the host key it gave it: that is
    failoverd's own trouble (journal_write_failed), not a failed
    failover, and the move completes once the disk is back."""
    w, disk = world
    w.sim.set_delays(pending=4.0)
    run = w.begin()
    with w.daemon() as d:
        d.wait_for(HEALTHY, timeout=30)
        w.break_production()
        w.sim.wait(lambda: w.calls("RunInstances", run["seq"]),
                   timeout=60, what="RunInstances")
        disk.break_it("read_only")
        d.wait_for(r"event=journal_write_failed service=web", timeout=60)
        d.drain(6.0)
        assert not any("event=failover_failed" in l for l in d.lines), \
            "\n".join(d.lines[-30:])
        disk.mend("read_only")
        d.wait_for(COMPLETED, timeout=120)
        d.drain(0.5)
    w.assert_replaced(run)
