"""scripts/demo --ha, as a user runs it: three failoverd members and a
3-member etcd against ec2sim; the leader is killed with SIGKILL in the
middle of the failover and another member must finish it. The demo
checks the end state itself (one replacement, running, the old instance
stopped, each volume attached once, the EIP on the replacement) and
exits 0 only then; this test runs it on the build under test."""
import os
import subprocess

SRCDIR = os.environ.get("FOD_SRCDIR") or os.path.join(
    os.path.dirname(__file__), "..", "..")
BUILD = os.environ.get("FAILOVERD_BUILD") or os.path.join(SRCDIR, "build")


def test_demo_ha_survives_the_leader_killed_mid_failover():
    env = dict(os.environ, FOD_DEMO_BUILD=os.path.abspath(BUILD))
    p = subprocess.run([os.path.join(SRCDIR, "scripts", "demo"), "--ha"],
                       cwd=SRCDIR, env=env, capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "demo --ha passed" in out, out[-4000:]
    # The story the user reads: a kill, a takeover, the cluster shown.
    assert "SIGKILL to the leader" in out
    assert "takes the lead" in out
