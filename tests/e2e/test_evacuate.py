"""AZ evacuation end to end: failoverd against ec2sim.

With policy.evacuate on, a failover whose volumes' AZ is impaired
restores the newest completed snapshot of each volume into a new volume
in an evacuation subnet's AZ, launches there, attaches, moves the EIP and
verifies. The alert says how old the data is and that restored volumes
start slow; the old volumes are left untouched; later failovers move the
new volumes."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import conftest  # noqa: E402
from conftest import (EIP, OLD, OTHER_AZ, VOLS, calls,  # noqa: E402
                      curl_health, evacuation, field, healthy)
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402

SNAPS = {"/dev/sdf": "snap-0daaaaaaaaaaaaaa1",
         "/dev/sdg": "snap-0daaaaaaaaaaaaaa2"}


def start(tmp_path, sim, evacuate=True, azs=(OTHER_AZ,)):
    """failoverd with policy.evacuate and the subnets of azs, in order."""
    return conftest.start(tmp_path, sim,
                          policy=evacuation(azs) if evacuate else None)


def test_impaired_az_evacuates_from_the_newest_snapshot(tmp_path, sim):
    # Writes after the snapshots: an evacuation loses them, by design.
    live = {dev: sim.volume(vid)["data"] for dev, vid in VOLS.items()}
    for dev, vid in VOLS.items():
        sim.set_volume(vid, data=live[dev] + " +later-writes")
    snap_data = {dev: sim.snapshot(sid)["data"] for dev, sid in
                 SNAPS.items()}
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.impair_az(BASIC["az"])
        line = d.wait_for(r"event=evacuation_started", timeout=60)
        assert BASIC["az"] in field(line, "reason")
        assert "impaired" in field(line, "reason")
        done = d.wait_for(r"event=evacuation_completed", timeout=90)
        d.wait_for(r"event=failover_completed", timeout=10)
        st = sim.state()
        new = [i for i in st["instances"].values() if i["id"] != OLD]
        assert len(new) == 1
        new = new[0]
        assert new["state"] == "running" and new["az"] == OTHER_AZ
        restored = {}
        for dev, vid in VOLS.items():
            nv = new["volumes"].get(dev)
            assert nv is not None and nv != vid
            v = sim.volume(nv)
            assert v["az"] == OTHER_AZ and v["snapshot"] == SNAPS[dev]
            assert v["data"] == snap_data[dev]
            restored[dev] = nv
            # The old volume is left as it was, never deleted.
            old = sim.volume(vid)
            assert old["data"] == live[dev] + " +later-writes"
            assert old["attachment"]["instance"] == OLD
        assert st["addresses"][EIP]["instance"] == new["id"]
        site = curl_health(sim)
        assert site["instance_id"] == new["id"]
        assert {v["device"]: v["data"] for v in site["volumes"]} == \
            snap_data
        # The alert: how old the data is, and that it starts slow.
        age = int(field(done, "snapshot_age"))
        assert 3600 <= age < 3600 + 600
        assert "lost" in field(done, "data")
        assert "slow" in field(done, "note")
        assert field(done, "az") == OTHER_AZ
        # The identity now holds the new volumes.
        svc = json.loads(ctl(d.sock, "status", "--json").stdout)
        svc = svc["services"][0]
        assert {v["device"]: v["id"] for v in svc["volumes"]} == restored
        assert {v["device"]: v["configured"] for v in svc["volumes"]} == \
            VOLS
        assert svc["az"] == OTHER_AZ
        assert "restored by an evacuation" in \
            ctl(d.sock, "status").stdout
        assert len(calls(sim, "CreateVolume")) == 2
    # After a restart, a failover moves the NEW volumes, in the new AZ.
    sim.impair_az(BASIC["az"], False)
    with start(tmp_path, sim) as d:
        healthy(d)
        # Preflight and snapshots follow the identity too: the restored
        # volumes, the evacuation's subnet; never the configured ones.
        d.wait_for(r"event=preflight_passed", timeout=30)
        pf = ctl(d.sock, "preflight", "web", "--result").stdout
        assert BASIC["subnets"][OTHER_AZ] in pf
        assert BASIC["subnets"][BASIC["az"]] not in pf
        for dev, vid in VOLS.items():
            assert restored[dev] in pf and vid not in pf
        out = ctl(d.sock, "snapshot", "web").stdout
        assert all(restored[dev] in out for dev in VOLS)
        first = d.wait_for(r"event=snapshot_taken", timeout=30)
        d.wait_for(r"event=snapshot_taken", timeout=30,
                   start=d.lines.index(first) + 1)
        taken = {field(x, "volume") for x in d.lines
                 if "event=snapshot_taken" in x}
        assert taken == set(restored.values())
        sim.instance_fault(new["id"], "both")
        d.wait_for(r"event=failover_completed", timeout=60)
        st = sim.state()
        third = [i for i in st["instances"].values()
                 if i["id"] not in (OLD, new["id"])]
        assert len(third) == 1 and third[0]["az"] == OTHER_AZ
        assert {dev: third[0]["volumes"].get(dev) for dev in VOLS} == \
            restored
        assert st["addresses"][EIP]["instance"] == third[0]["id"]
        assert "evacuation_started" not in "\n".join(d.lines)
        assert len(calls(sim, "CreateVolume")) == 2


def test_impaired_az_without_evacuate_touches_no_snapshot(tmp_path, sim):
    """Off by default: it would lose the writes since the snapshot."""
    with start(tmp_path, sim, evacuate=False) as d:
        healthy(d)
        sim.impair_az(BASIC["az"])
        d.wait_for(r"event=failover_(failed|completed)", timeout=90)
        assert calls(sim, "CreateVolume") == []
        assert "evacuation_started" not in "\n".join(d.lines)
        for vid in VOLS.values():
            assert sim.volume(vid)["az"] == BASIC["az"]


def test_kill_9_during_an_evacuation_then_restart_restores_once(
        tmp_path, sim):
    sim.set_delays(volume_create=1.5)
    d = start(tmp_path, sim)
    try:
        healthy(d)
        sim.impair_az(BASIC["az"])
        d.wait_for(r"evacuation restores", timeout=60)
        d.wait_for(r"restored from snap-\S+ as vol-", timeout=30)
        d.proc.kill()
        d.stop(check=False)
    finally:
        if d.proc.poll() is None:
            d.stop(check=False)
    with start(tmp_path, sim) as d2:
        d2.wait_for(r"resuming failover", timeout=10)
        d2.wait_for(r"event=evacuation_completed", timeout=90)
        st = sim.state()
        made = [v for v in st["volumes"].values()
                if v["tags"].get("failoverd:restored-from")]
        assert len(made) == 2
        new = [i for i in st["instances"].values() if i["id"] != OLD]
        assert len(new) == 1 and new[0]["az"] == OTHER_AZ
        assert sorted(new[0]["volumes"][dev] for dev in VOLS) == \
            sorted(v["id"] for v in made)
        assert st["addresses"][EIP]["instance"] == new[0]["id"]


def test_no_capacity_in_the_volumes_az_evacuates(tmp_path, sim):
    """EC2 says the AZ is fine, but launches there keep failing."""
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.fault(kind="error", action="RunInstances",
                  code="InsufficientInstanceCapacity", status=400,
                  message="We currently do not have sufficient t3.micro "
                  "capacity in the Availability Zone you requested.",
                  count=3)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=evacuation_started", timeout=60)
        assert "InsufficientInstanceCapacity" in field(line, "reason")
        d.wait_for(r"event=evacuation_completed", timeout=60)
        runs = calls(sim, "RunInstances")
        assert [r["params"].get("SubnetId") for r in runs] == \
            [BASIC["subnets"][BASIC["az"]]] * 3 + \
            [BASIC["subnets"][OTHER_AZ]]
        new = [i for i in sim.state()["instances"].values()
               if i["id"] != OLD]
        assert len(new) == 1 and new[0]["az"] == OTHER_AZ
        assert sim.state()["addresses"][EIP]["instance"] == new[0]["id"]


def test_no_capacity_in_the_first_evacuation_subnet_uses_the_second(
        tmp_path, sim):
    """us-east-1a (the volumes' AZ) is impaired, and so is us-east-1b,
    the first evacuation subnet's AZ: launches there fail with
    InsufficientInstanceCapacity. The evacuation goes on in the second
    subnet's AZ, us-east-1c, leaves nothing behind in 1b, and stays in
    1c for the next failover."""
    first, second = "us-east-1b", "us-east-1c"
    sub1, sub2 = BASIC["subnets"][first], BASIC["subnets"][second]
    snap_data = {dev: sim.snapshot(sid)["data"] for dev, sid in
                 SNAPS.items()}
    with start(tmp_path, sim, azs=(first, second)) as d:
        healthy(d)
        sim.impair_az(first)
        sim.impair_az(BASIC["az"])
        line = d.wait_for(r"event=evacuation_started", timeout=60)
        assert field(line, "az") == BASIC["az"]
        assert field(line, "subnets") == "%s,%s" % (sub1, sub2)
        moved_on = d.wait_for(r"evacuation subnet %s: .*; trying %s"
                              % (sub1, sub2), timeout=60)
        assert "InsufficientInstanceCapacity" in moved_on
        done = d.wait_for(r"event=evacuation_completed", timeout=90)
        fin = d.wait_for(r"event=failover_completed", timeout=10)
        # The retry budget in the first subnet, then the second one.
        runs = calls(sim, "RunInstances")
        assert [r["params"].get("SubnetId") for r in runs] == \
            [sub1] * 3 + [sub2]
        st = sim.state()
        new = [i for i in st["instances"].values() if i["id"] != OLD]
        assert len(new) == 1
        new = new[0]
        assert new["state"] == "running" and new["az"] == second
        assert new["subnet"] == sub2
        restored = {}
        for dev, vid in VOLS.items():
            nv = new["volumes"].get(dev)
            assert nv is not None and nv != vid
            v = sim.volume(nv)
            assert v["az"] == second and v["snapshot"] == SNAPS[dev]
            assert v["data"] == snap_data[dev]
            assert v["attachment"]["state"] == "attached"
            restored[dev] = nv
            assert sim.volume(vid)["attachment"]["instance"] == OLD
        assert st["addresses"][EIP]["instance"] == new["id"]
        # Nothing orphaned where there was no capacity: no instance,
        # no restored volume; one CreateVolume per volume, all in 1c.
        assert [i["id"] for i in st["instances"].values()
                if i["az"] == first] == []
        assert [v["id"] for v in st["volumes"].values()
                if v["az"] == first] == []
        creates = calls(sim, "CreateVolume")
        assert [c["params"].get("AvailabilityZone") for c in creates] == \
            [second, second]
        site = curl_health(sim)
        assert site["instance_id"] == new["id"]
        assert {v["device"]: v["data"] for v in site["volumes"]} == \
            snap_data
        # The alerts name the AZ the service is in now.
        assert field(done, "az") == second
        assert field(done, "instance") == new["id"]
        assert field(fin, "az") == second
        assert field(fin, "new_instance") == new["id"]
        svc = json.loads(ctl(d.sock, "status", "--json").stdout)
        assert svc["services"][0]["az"] == second
        # With every AZ fine again, the next failover launches in the
        # subnet the evacuation used (1b would not see the volumes).
        sim.impair_az(first, False)
        sim.impair_az(BASIC["az"], False)
        n = len(d.lines)
        sim.instance_fault(new["id"], "both")
        d.wait_for(r"event=failover_completed", timeout=60, start=n)
        st = sim.state()
        third = [i for i in st["instances"].values()
                 if i["id"] not in (OLD, new["id"])]
        assert len(third) == 1 and third[0]["subnet"] == sub2
        assert {dev: third[0]["volumes"].get(dev) for dev in VOLS} == \
            restored
        assert st["addresses"][EIP]["instance"] == third[0]["id"]
        assert calls(sim, "RunInstances")[-1]["params"]["SubnetId"] == sub2
        assert "evacuation_started" not in "\n".join(d.lines[n:])
