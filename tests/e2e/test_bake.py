"""Baking an AMI end to end: failoverd against ec2sim.

What a person relies on: `failoverctl bake web` makes an AMI of the
instance the Elastic IP points at, tagged as failoverd's, and waits
until it is available; --no-reboot is passed on (no reboot of
production); --use makes it the replacement AMI shown in status and
kept across a restart, while the configuration's AMI stays as it is; a
refused CreateImage is a bake_failed alert with AWS's reason."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import field, start_manual  # noqa: E402
from fodtest import ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402


@pytest.fixture
def sim(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim", delays={"image": 1.0}) as s:
        yield s


def status(d):
    return json.loads(ctl(d.sock, "status", "web", "--json").stdout)[
        "services"][0]


def test_bake_use_makes_the_replacement_ami_and_keeps_it(tmp_path, sim):
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        sim.clear_requests()
        out = ctl(d.sock, "bake", "web", "--no-reboot", "--use").stdout
        assert "started" in out
        done = d.wait_for(r"event=bake_completed service=web", timeout=30)
        st = status(d)
    image = field(done, "image")
    assert field(done, "instance") == BASIC["instance"]
    assert st["bake"]["replacement_ami"] == image
    assert st["bake"]["last_result"] == "available"
    im = sim.state()["images"][image]
    assert im["state"] == "available"
    assert im["tags"]["failoverd:service"] == "web"
    assert im["tags"]["failoverd:taken-by"] == "failoverd"
    assert im["tags"]["failoverd:source-instance"] == BASIC["instance"]
    create = sim.requests(action="CreateImage")
    assert len(create) == 1
    assert create[0]["params"]["InstanceId"] == BASIC["instance"]
    assert create[0]["params"]["NoReboot"] in ("true", True)
    # It waited for 'available' by asking, not by guessing.
    assert sim.requests(action="DescribeImages")
    # Kept across a restart; the configuration still names its AMI.
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        st = status(d)
        text = ctl(d.sock, "status", "web").stdout
    assert st["bake"]["replacement_ami"] == image
    assert f"replacement AMI: {image}" in text
    with open(os.path.join(str(tmp_path), "failoverd.conf")) as f:
        assert f'ami = "{BASIC["image"]}"' in f.read()


def test_bake_without_use_leaves_the_replacement_alone(tmp_path, sim):
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        ctl(d.sock, "bake", "web")
        # A second bake while one runs is refused, not queued.
        p = ctl(d.sock, "bake", "web", check=False)
        assert p.returncode == 1 and "in progress" in p.stderr
        done = d.wait_for(r"event=bake_completed service=web", timeout=30)
        st = status(d)
    assert st["bake"]["replacement_ami"] == ""
    assert st["bake"]["last_image"] == field(done, "image")
    # Without --no-reboot, EC2 reboots the instance for the image.
    create = sim.requests(action="CreateImage")[-1]
    assert "NoReboot" not in create["params"]


def test_refused_bake_alerts_with_the_reason(tmp_path, sim):
    with start_manual(tmp_path, sim) as d:
        d.wait_for(r"event=preflight_passed service=web", timeout=30)
        sim.set_policy({"deny": ["CreateImage"]})
        ctl(d.sock, "bake", "web", "--use")
        failed = d.wait_for(r"event=bake_failed service=web", timeout=30)
        st = status(d)
    assert "UnauthorizedOperation" in field(failed, "reason")
    assert st["bake"]["replacement_ami"] == ""
    assert st["bake"]["last_result"].startswith("failed: ")
    assert set(sim.state()["images"]) == {BASIC["image"]}
