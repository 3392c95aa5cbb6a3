"""Volumes, images and zones as EC2 documents them: failoverd against
ec2sim (issue 12, behaviours 2, 6, 7 and 8).

- An AMI made from production maps its data volumes (CreateImage): bake
  leaves the data devices out, every launch does too (NoDevice), and
  preflight reads the mappings of the image the next failover launches.
- DetachVolume Force only from the instance failoverd fenced: a volume
  any other instance holds stops the failover with an alert naming it.
- DescribeSnapshots asks for Owner=self and pages; a restored volume
  keeps its source's type, IOPS and throughput.
- Only an impaired or unavailable AZ is evacuated."""
import json
import os
import sys

import botocore.session
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import (OLD, OTHER_AZ, VOLS, calls,  # noqa: E402
                      evacuation, field, healthy, start)
from conftest import preflight_result as result  # noqa: E402
from fodtest import ctl  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

ROOT = "/dev/xvda"
OWN_SNAPS = {"/dev/sdf": "snap-0daaaaaaaaaaaaaa1",
             "/dev/sdg": "snap-0daaaaaaaaaaaaaa2"}


@pytest.fixture
def sim(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim", delays={"image": 0.5}) as s:
        yield s


def client(sim):
    env = sim.env()
    return botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1",
        endpoint_url=sim.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def image_devices(sim, ami):
    c = client(sim)
    im = c.describe_images(ImageIds=[ami])["Images"][0]
    return {m["DeviceName"] for m in im["BlockDeviceMappings"]}


def no_device_params(params):
    """{device: NoDevice value} of BlockDeviceMapping.N in a request."""
    out = {}
    for k, v in params.items():
        if k.startswith("BlockDeviceMapping.") and k.endswith(".DeviceName"):
            nd = k[:-len("DeviceName")] + "NoDevice"
            if nd in params:
                out[v] = params[nd]
    return out


def start_with_ami(tmp_path, sim, ami):
    """failoverd whose launch.ami is ami."""
    return start(tmp_path, sim, launch={"ami": ami})


def assert_real_volumes_only(sim, new):
    """The replacement has its root and the real data volumes, no copy."""
    assert set(new["volumes"]) == {ROOT, *VOLS}, new["volumes"]
    for dev, vid in VOLS.items():
        assert new["volumes"][dev] == vid
    refused = [r for r in sim.requests(action="AttachVolume")
               if "already in use" in (r.get("message") or "")]
    assert refused == []


# --- 2: images made from production --------------------------------------

def test_bake_use_then_failover_attaches_the_real_volumes(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        ctl(d.sock, "bake", "web", "--no-reboot", "--use")
        done = d.wait_for(r"event=bake_completed service=web", timeout=30)
        image = field(done, "image")
        create = calls(sim, "CreateImage")[-1]["params"]
        assert no_device_params(create) == {"/dev/sdf": "",
                                            "/dev/sdg": ""}
        # The image holds the system, not the data the failover moves.
        assert image_devices(sim, image) == {ROOT}
        # Preflight checks the AMI the next failover really launches.
        ctl(d.sock, "preflight", "web")
        r = result(d)
        assert r["ami"] == image, r
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        st = sim.state()
        new = [i for i in st["instances"].values() if i["id"] != OLD]
        assert len(new) == 1 and new[0]["image"] == image
        assert_real_volumes_only(sim, new[0])
        run = calls(sim, "RunInstances")[-1]["params"]
        assert run["ImageId"] == image
        assert no_device_params(run) == {"/dev/sdf": "", "/dev/sdg": ""}
        assert st["addresses"][BASIC["eip"]]["instance"] == new[0]["id"]


def image_state(c, ami):
    """The image's state as DescribeImages shows it, None while the
    new image is not visible yet (EC2 is eventually consistent)."""
    try:
        return c.describe_images(ImageIds=[ami])["Images"][0]["State"]
    except c.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "InvalidAMIID.NotFound":
            return None
        raise


def test_image_carrying_data_devices_is_flagged_and_launched_without_them(
        tmp_path, sim):
    # Someone imaged production by hand (console default: every volume).
    c = client(sim)
    ami = c.create_image(InstanceId=OLD, Name="prod-web-by-hand",
                         NoReboot=True)["ImageId"]
    sim.wait(lambda: image_state(c, ami) == "available", timeout=10,
             what="image available")
    assert image_devices(sim, ami) == {ROOT, *VOLS}
    with start_with_ami(tmp_path, sim, ami) as d:
        healthy(d)
        r = result(d)
        assert r["ami"] == ami
        check = [x for x in r["checks"]
                 if x["check"] == f"block devices of {ami}"]
        assert len(check) == 1, json.dumps(r, indent=1)
        assert "conflict" in check[0]["detail"]
        assert "/dev/sdf" in check[0]["detail"]
        assert "/dev/sdg" in check[0]["detail"]
        dry = [q for q in sim.requests(action="RunInstances")
               if q["params"].get("ImageId") == ami][-1]["params"]
        assert no_device_params(dry) == {"/dev/sdf": "", "/dev/sdg": ""}
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        new = [i for i in sim.state()["instances"].values()
               if i["id"] != OLD]
        assert len(new) == 1 and new[0]["image"] == ami
        assert_real_volumes_only(sim, new[0])
        # No stale copy was made at all: only the root was created.
        made = [v for v in sim.state()["volumes"].values()
                if v["attachment"] and
                v["attachment"]["instance"] == new[0]["id"] and
                v["id"] not in VOLS.values()]
        assert [v["attachment"]["device"] for v in made] == [ROOT]


# --- 6: force-detach only from the instance failoverd fenced -------------

def test_volume_on_another_running_instance_is_never_force_detached(
        tmp_path, sim):
    c = client(sim)
    other = c.run_instances(
        ImageId=BASIC["image"], MinCount=1, MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=BASIC["subnets"]["us-east-1a"])["Instances"][0][
        "InstanceId"]
    sim.wait_instance_state(other, "running", timeout=20)
    vol = VOLS["/dev/sdg"]
    with start(tmp_path, sim) as d:
        healthy(d)
        # A person moved the uploads volume to an instance of their own,
        # which uses it: a detach without Force stays busy there.
        c.detach_volume(VolumeId=vol, Force=True)
        sim.wait(lambda: sim.volume(vol)["state"] == "available",
                 timeout=10, what="volume free")
        c.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdh")
        sim.wait(lambda: (sim.volume(vol)["attachment"] or {}).get(
            "state") == "attached", timeout=10, what="attached")
        sim.set_volume(vol, detach_busy=True)
        sim.clear_requests()
        sim.instance_fault(OLD, "both")
        held = d.wait_for(r"event=failover_held service=web", timeout=90)
        failed = d.wait_for(r"event=failover_failed service=web",
                            timeout=30)
        # Past detach_timeout (5 s): a forced detach would have come.
        d.drain(6)
    assert field(held, "volume") == vol
    assert field(held, "instance") == other
    assert field(held, "device") == "/dev/sdh"
    assert field(held, "attachment") == "attached"
    assert field(held, "instance_state") == "running"
    assert "stop it" in field(held, "action")
    assert other in field(failed, "reason")
    detaches = [r for r in sim.requests(action="DetachVolume")
                if r["params"].get("VolumeId") == vol]
    assert detaches == [], detaches
    # Still where the person put it, untouched.
    att = sim.volume(vol)["attachment"]
    assert att["instance"] == other and att["state"] == "attached"
    # Nothing was half moved: the other volume stays on the fenced
    # production instance, ready for a person's next step.
    assert sim.instance(OLD)["state"] == "stopped"
    assert calls(sim, "DetachVolume") == []
    assert sim.volume(VOLS["/dev/sdf"])["attachment"]["instance"] == OLD


def test_volume_on_another_stopped_instance_is_detached_without_force(
        tmp_path, sim):
    """A stopped holder (a failed failover's replacement, stopped when
    it failed) writes nothing: a plain detach frees the volume."""
    c = client(sim)
    other = c.run_instances(
        ImageId=BASIC["image"], MinCount=1, MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=BASIC["subnets"]["us-east-1a"])["Instances"][0][
        "InstanceId"]
    sim.wait_instance_state(other, "running", timeout=20)
    vol = VOLS["/dev/sdg"]
    with start(tmp_path, sim) as d:
        healthy(d)
        c.detach_volume(VolumeId=vol, Force=True)
        sim.wait(lambda: sim.volume(vol)["state"] == "available",
                 timeout=10, what="volume free")
        c.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdg")
        c.stop_instances(InstanceIds=[other])
        sim.wait_instance_state(other, "stopped", timeout=20)
        sim.clear_requests()
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        text = "\n".join(d.lines)
    assert "event=failover_held" not in text
    detaches = [r["params"] for r in calls(sim, "DetachVolume")
                if r["params"].get("VolumeId") == vol]
    assert detaches and all(p.get("InstanceId") == other and
                            str(p.get("Force", "false")).lower() != "true"
                            for p in detaches), detaches
    new = [i for i in sim.state()["instances"].values()
           if i["id"] not in (OLD, other)]
    assert len(new) == 1
    assert_real_volumes_only(sim, new[0])


# --- 7: snapshot lookups --------------------------------------------------

def owner_and_page(req):
    p = req["params"]
    return p.get("Owner.1"), p.get("MaxResults")


def test_evacuation_restores_our_snapshot_with_the_source_performance(
        tmp_path, sim):
    # Newer public snapshots of another account match the same filters.
    public = BASIC["public_snapshots"]
    for vid, sid in public.items():
        assert sim.state()["snapshots"][sid]["public"] is True
    with start(tmp_path, sim, policy=evacuation()) as d:
        healthy(d)
        sim.impair_az(BASIC["az"])
        d.wait_for(r"event=evacuation_completed", timeout=90)
        d.wait_for(r"event=failover_completed", timeout=30)
    st = sim.state()
    new = [i for i in st["instances"].values() if i["id"] != OLD]
    assert len(new) == 1
    for dev, vid in VOLS.items():
        src = sim.volume(vid)
        nv = sim.volume(new[0]["volumes"][dev])
        assert nv["snapshot"] == OWN_SNAPS[dev]
        assert nv["snapshot"] != public[vid]
        assert not nv["data"].startswith("foreign")
        assert (nv["type"], nv["iops"], nv["throughput"]) == \
            (src["type"], src["iops"], src["throughput"])
    assert {sim.volume(v)["type"] for v in VOLS.values()} == {"io2", "gp3"}
    creates = calls(sim, "CreateVolume")
    assert {r["params"].get("VolumeType") for r in creates} == \
        {"io2", "gp3"}
    looks = calls(sim, "DescribeSnapshots")
    assert looks
    for r in looks:
        assert owner_and_page(r) == ("self", "500"), r["params"]


def test_snapshot_listing_asks_for_own_snapshots_by_pages(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        ctl(d.sock, "snapshot", "web")
        # The run lists the service's snapshots for retention.
        d.wait_for(r"service web: snapshot \[list\] -> ", timeout=60)
        listing = json.loads(ctl(d.sock, "snapshots", "web",
                                 "--json").stdout)
    shown = {s["id"] for s in listing["snapshots"]}
    assert not shown & set(BASIC["public_snapshots"].values())
    looks = calls(sim, "DescribeSnapshots")
    assert looks
    for r in looks:
        assert owner_and_page(r) == ("self", "500"), r["params"]


# --- 8: Availability Zone states -----------------------------------------

@pytest.mark.parametrize("state", ["constrained", "information"])
def test_az_notice_is_no_reason_to_evacuate(tmp_path, sim, state):
    with start(tmp_path, sim, policy=evacuation()) as d:
        healthy(d)
        sim.set_az_state(BASIC["az"], state)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=90)
        text = "\n".join(d.lines)
    assert "evacuation_started" not in text
    assert f"{BASIC['az']} is {state}: not a reason to evacuate" in text
    new = [i for i in sim.state()["instances"].values() if i["id"] != OLD]
    assert len(new) == 1 and new[0]["az"] == BASIC["az"]
    assert_real_volumes_only(sim, new[0])
    assert calls(sim, "CreateVolume") == []
    assert calls(sim, "DescribeAvailabilityZones")


def test_unavailable_az_is_evacuated(tmp_path, sim):
    with start(tmp_path, sim, policy=evacuation()) as d:
        healthy(d)
        sim.set_az_state(BASIC["az"], "unavailable")
        line = d.wait_for(r"event=evacuation_started", timeout=90)
        assert f"{BASIC['az']} is unavailable" in field(line, "reason")
        d.wait_for(r"event=evacuation_completed", timeout=90)
    new = [i for i in sim.state()["instances"].values() if i["id"] != OLD]
    assert len(new) == 1 and new[0]["az"] == OTHER_AZ
