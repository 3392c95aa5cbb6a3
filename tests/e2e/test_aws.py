"""The AWS client against ec2sim: every action signed (botocore checks each
signature in the sim), IMDSv2 credentials and their rotation, the
credentials-file permission refusal, retries on throttling, 503 and
dropped connections, a hung call bounded by its deadline while the loop
keeps its schedule, clock skew, eventual consistency and DryRun answers.

Each test gets a fresh ec2sim (it starts in well under a second) and runs
tests/tools/ec2call, which drives the real client on a libev loop and
prints every typed result as a JSON line."""
import base64
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from awsclient import (AMI, EIP_SPARE, PROD, SG,  # noqa: E402,F401
    SNAP_DB, SNAP_UPLOADS, SUBNET_B, VOL_DB, bare_sim, ec2call)


@pytest.fixture
def sim():
    with bare_sim("test_aws.") as s:
        yield s


def call(sim, *args, env=None, ok=True):
    rc, out, err = ec2call(env or sim.env(), *args)
    assert out, f"ec2call printed nothing: {err}"
    if ok:
        assert rc == 0, f"{out[-1].get('error')}\n{err}"
        assert out[0]["status"] == "ok", out[0]["error"]
    return out[0]


def wait_state(sim, what, pred, timeout=30):
    """Polls a Describe call until pred(result) holds."""
    deadline = time.monotonic() + timeout
    while True:
        r = call(sim, *what)
        if pred(r):
            return r
        assert time.monotonic() < deadline, f"{what}: {r}"
        time.sleep(0.2)


def secrets_absent(text, sim):
    return sim.ready["secret_key"] not in text


def test_every_action_is_signed_and_understood(sim):
    r = call(sim, "DescribeInstances")
    prod = {i["id"]: i for i in r["instances"]}[PROD]
    assert prod["state"] == "running"
    assert prod["az"] == "us-east-1a"
    assert prod["subnet"] == "subnet-0aaaaaaaaaaaaaaa1"
    assert prod["private_ip"].startswith("127.")
    assert {b["id"] for b in prod["block_devices"]} >= {VOL_DB}
    assert prod["tags"]["failoverd:service"] == "web"

    r = call(sim, "DescribeInstanceStatus", f"InstanceId.1={PROD}")
    assert r["statuses"][0]["id"] == PROD
    assert r["statuses"][0]["state"] == "running"

    r = call(sim, "DescribeVolumes", f"VolumeId.1={VOL_DB}")
    assert r["volumes"][0]["az"] == "us-east-1a"
    assert r["volumes"][0]["attachments"][0]["instance_id"] == PROD

    r = call(sim, "DescribeAddresses")
    assoc = {a["allocation_id"]: a for a in r["addresses"]}
    assert assoc["eipalloc-0aaaaaaaaaaaaaaa1"]["instance_id"] == PROD
    assert assoc[EIP_SPARE]["association_id"] is None

    r = call(sim, "DescribeSnapshots", "Owner.1=self")
    assert SNAP_DB in {s["id"] for s in r["snapshots"]}
    r = call(sim, "DescribeImages", "Owner.1=self")
    assert AMI in {i["id"] for i in r["images"]}
    r = call(sim, "DescribeAvailabilityZones")
    assert {z["name"]: z["state"] for z in r["zones"]}["us-east-1b"] == \
        "available"

    call(sim, "CreateTags", f"ResourceId.1={PROD}", "Tag.1.Key=checked",
         "Tag.1.Value=yes")

    r = call(sim, "CreateSnapshot", f"VolumeId={VOL_DB}",
             "Description=test")
    assert r["id"].startswith("snap-")
    assert r["snapshots"][0]["volume_id"] == VOL_DB
    call(sim, "DeleteSnapshot", f"SnapshotId={SNAP_UPLOADS}")

    r = call(sim, "CreateVolume", f"SnapshotId={SNAP_DB}",
             "AvailabilityZone=us-east-1b", "VolumeType=gp3")
    newvol = r["id"]
    assert r["volumes"][0]["az"] == "us-east-1b"

    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    r = call(sim, "RunInstances", f"ImageId={AMI}", "MinCount=1",
             "MaxCount=1", "InstanceType=t3.micro", f"SubnetId={SUBNET_B}",
             "KeyName=prod-key", f"SecurityGroupId.1={SG}",
             "IamInstanceProfile.Name=prod-web-role",
             "ClientToken=test-aws-token-1", f"UserData={user_data}",
             "TagSpecification.1.ResourceType=instance",
             "TagSpecification.1.Tag.1.Key=failoverd:service",
             "TagSpecification.1.Tag.1.Value=web")
    new = r["instances"][0]["id"]
    assert r["instances"][0]["az"] == "us-east-1b"

    wait_state(sim, ("DescribeInstances", f"InstanceId.1={new}"),
               lambda r: r["instances"][0]["state"] == "running")
    wait_state(sim, ("DescribeVolumes", f"VolumeId.1={newvol}"),
               lambda r: r["volumes"][0]["state"] == "available")
    r = call(sim, "AttachVolume", f"VolumeId={newvol}",
             f"InstanceId={new}", "Device=/dev/sdf")
    assert r["attachment"]["volume_id"] == newvol
    assert r["attachment"]["state"] in ("attaching", "attached")
    wait_state(sim, ("DescribeVolumes", f"VolumeId.1={newvol}"),
               lambda r: r["volumes"][0]["state"] == "in-use")
    r = call(sim, "DetachVolume", f"VolumeId={newvol}", "Force=true")
    assert r["attachment"]["instance_id"] == new

    r = call(sim, "AssociateAddress", f"AllocationId={EIP_SPARE}",
             f"InstanceId={new}", "AllowReassociation=true")
    association = r["id"]
    assert association
    call(sim, "DisassociateAddress", f"AssociationId={association}")

    r = call(sim, "StopInstances", f"InstanceId.1={PROD}", "Force=true")
    assert r["changes"][0]["previous"] == "running"
    wait_state(sim, ("DescribeInstances", f"InstanceId.1={PROD}"),
               lambda r: r["instances"][0]["state"] == "stopped")
    r = call(sim, "StartInstances", f"InstanceId.1={PROD}")
    assert r["changes"][0]["id"] == PROD

    r = call(sim, "CreateImage", f"InstanceId={new}", "Name=test-bake-1",
             "NoReboot=true")
    image = r["id"]
    assert image.startswith("ami-")
    wait_state(sim, ("DescribeImages", f"ImageId.1={image}"),
               lambda r: r["images"][0]["state"] == "available")
    call(sim, "DeregisterImage", f"ImageId={image}")

    r = call(sim, "GetConsoleOutput", f"InstanceId={new}")
    assert r["console"] is None or isinstance(r["console"], str)

    r = call(sim, "TerminateInstances", f"InstanceId.1={new}")
    assert r["changes"][0]["current"] in ("shutting-down", "terminated")

    # The sim checked every signature with botocore: all were accepted.
    log = sim.requests()
    actions = {e["action"] for e in log}
    assert len(actions) == 22, sorted(actions)
    bad = [e for e in log if e["status"] != 200]
    assert not bad, bad
    assert all(e["version"] == "2016-11-15" for e in log)


def test_imds_credentials_are_used_and_rotated_while_running(sim):
    sim.control("POST", "/imds", {"lifetime": 4})
    env = sim.env(static=False)
    rc, out, err = ec2call(env, "--repeat", "8", "--interval", "1",
                           "DescribeAvailabilityZones")
    assert rc == 0, err
    assert [r["status"] for r in out] == ["ok"] * 8
    assert "instance role (IMDSv2)" in err
    log = sim.requests("DescribeAvailabilityZones")
    assert len(log) == 8
    assert all(e["status"] == 200 for e in log)
    assert all(e["credential_kind"] == "role" for e in log)
    # New credentials replaced the old ones before they expired.
    assert len({e["access_key"] for e in log}) >= 2
    assert "IQoJec2sim" not in err  # the session token never reaches a log


def test_imds_creds_chain_reports_its_source(sim):
    rc, out, err = ec2call(sim.env(static=False), "creds")
    assert rc == 0, err
    assert out[0]["source"] == "instance role (IMDSv2)"
    assert out[0]["access_key_id"].startswith("ASIA")
    assert out[0]["has_token"] is True
    rc, out, err = ec2call(sim.env(static=True), "creds")
    assert out[0]["source"] == "environment"


def test_credentials_file_readable_by_others_is_refused(sim):
    path = os.path.join(sim.workdir, "credentials")
    with open(path, "w") as f:
        f.write("[default]\n"
                f"aws_access_key_id = {sim.ready['access_key']}\n"
                f"aws_secret_access_key = {sim.ready['secret_key']}\n")
    os.chmod(path, 0o644)
    env = sim.env(static=False)
    env["AWS_SHARED_CREDENTIALS_FILE"] = path
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    assert out[0]["status"] == "no-credentials"
    assert path in out[0]["message"] and "0644" in out[0]["message"]
    assert secrets_absent(err + json.dumps(out), sim)
    assert sim.requests() == []

    os.chmod(path, 0o600)
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    assert f"shared file {path} [default]" in err
    assert secrets_absent(err, sim)


def test_profile_from_config_file(sim):
    path = os.path.join(sim.workdir, "config")
    with open(path, "w") as f:
        f.write("[default]\nregion = us-east-1\n\n[profile ops]\n"
                "s3 =\n  max_concurrent_requests = 2\n"
                f"aws_access_key_id = {sim.ready['access_key']}\n"
                f"aws_secret_access_key = {sim.ready['secret_key']}\n")
    os.chmod(path, 0o600)
    env = sim.env(static=False)
    env["AWS_CONFIG_FILE"] = path
    env["AWS_PROFILE"] = "ops"
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    assert "[profile ops]" in err


def test_throttled_three_times_then_success(sim):
    sim.fault(kind="throttle", count=3, action="DescribeInstances")
    r = call(sim, "DescribeInstances")
    assert r["attempts"] == 4
    codes = [e["code"] for e in sim.requests("DescribeInstances")]
    assert codes[:3] == ["RequestLimitExceeded"] * 3
    assert codes[3] == "OK"


def test_503_is_retried(sim):
    sim.fault(kind="error503", count=2, action="DescribeVolumes")
    r = call(sim, "DescribeVolumes")
    assert r["attempts"] == 3
    assert len(r["volumes"]) >= 2


def test_dropped_connection_is_retried(sim):
    sim.fault(kind="drop", count=1, action="DescribeAddresses")
    r = call(sim, "DescribeAddresses")
    assert r["attempts"] == 2
    assert r["addresses"]


def test_throttling_beyond_the_deadline_returns_the_last_error(sim):
    sim.fault(kind="throttle", count=1000, action="DescribeInstances")
    rc, out, err = ec2call(sim.env(), "--deadline", "2",
                           "DescribeInstances")
    assert rc == 1, err
    assert out[0]["status"] in ("aws-error", "timeout")
    assert out[0]["code"] == "RequestLimitExceeded"
    assert out[0]["retryable"] is True
    assert out[0]["attempts"] > 1
    assert out[0]["elapsed"] < 2 + 1.0


def test_hung_call_times_out_while_the_loop_keeps_its_schedule(sim):
    sim.fault(kind="hang", count=1, action="DescribeInstanceStatus")
    rc, out, err = ec2call(sim.env(), "--deadline", "2", "--tick", "0.1",
                           "DescribeInstanceStatus")
    assert rc == 1
    res, ticks = out[0], out[1]
    assert res["status"] == "timeout"
    assert "deadline" in res["message"]
    assert 2.0 - 0.05 <= res["elapsed"] < 2.0 + 1.0
    # A 0.1 s timer beside the hung call: it kept firing, never late by
    # more than a fraction of its period.
    assert ticks["ticks"] >= 15
    assert ticks["tick_late"] < 0.5


def test_non_retryable_error_comes_back_at_once(sim):
    rc, out, err = ec2call(sim.env(), "DescribeInstances",
                           "InstanceId.1=i-0123456789abcdef0")
    assert rc == 1
    r = out[0]
    assert r["status"] == "aws-error"
    assert r["code"] == "InvalidInstanceID.NotFound"
    assert r["attempts"] == 1
    assert r["request_id"]
    assert r["http_status"] == 400


def test_not_found_after_a_mutation_is_retried(sim):
    rc, out, err = ec2call(sim.env(), "--deadline", "1.5",
                           "--after-mutation", "DescribeVolumes",
                           "VolumeId.1=vol-0123456789abcdef0")
    assert rc == 1
    assert out[0]["code"] == "InvalidVolume.NotFound"
    assert out[0]["attempts"] > 1
    assert "eventual consistency" in err


def test_clock_skew_is_corrected_from_the_date_header(sim):
    # More than 15 minutes off: RequestExpired.
    sim.control("POST", "/clock", {"offset": 1200})
    r = call(sim, "DescribeAvailabilityZones")
    assert r["attempts"] == 2
    codes = [e["code"] for e in sim.requests()]
    assert codes == ["RequestExpired", "OK"]


@pytest.mark.parametrize("offset", [400, -400])
def test_signature_expired_authfailure_is_skew_not_credentials(sim,
                                                                offset):
    # Between 5 and 15 minutes EC2 says AuthFailure, "Signature expired"
    # (our clock behind) or "Signature not yet current" (ahead): the
    # clock is corrected from Date, the credentials are not blamed.
    sim.control("POST", "/clock", {"offset": offset})
    rc, out, err = ec2call(sim.env(static=False), "--repeat", "2",
                           "DescribeAvailabilityZones")
    assert rc == 0, err
    assert [r["attempts"] for r in out] == [2, 1]
    log = sim.requests()
    assert [e["code"] for e in log] == ["AuthFailure", "OK", "OK"]
    assert ("Signature expired" if offset > 0 else
            "Signature not yet current") in log[0]["message"]
    # One set of role credentials all along: skew is no rotation.
    assert len({e["access_key"] for e in log}) == 1
    assert "refused by AWS" not in err
    assert f"{-offset:+d}s off" in err or \
        f"{-offset - 1:+d}s off" in err or f"{-offset + 1:+d}s off" in err


def test_expired_session_token_fetches_new_credentials(sim):
    # The local clock is 200 s behind EC2's: within the five minutes
    # SigV4 allows, but the role credentials (10 s here) expire by
    # EC2's clock while failoverd's still thinks them good. EC2 says
    # RequestExpired: the clock is corrected from Date and new
    # credentials are fetched; no call fails.
    sim.control("POST", "/imds", {"lifetime": 10})
    sim.control("POST", "/clock", {"offset": 200})
    rc, out, err = ec2call(sim.env(static=False), "--repeat", "16",
                           "--interval", "1", "DescribeAvailabilityZones")
    assert rc == 0, err
    assert [r["status"] for r in out] == ["ok"] * 16
    log = sim.requests("DescribeAvailabilityZones")
    codes = [e["code"] for e in log]
    assert "RequestExpired" in codes
    assert codes.count("RequestExpired") == 1, codes
    first = codes.index("RequestExpired")
    assert log[first + 1]["access_key"] != log[first]["access_key"]
    assert "+0s off" not in err and "-0s off" not in err
    assert "IQoJec2sim" not in err


def test_non_retryable_error_after_a_retry_is_not_transient(sim):
    # A 500, then an answer that no retry changes: final, and said so.
    sim.fault(kind="error500", count=1, action="RunInstances")
    sim.fault(kind="error", code="IdempotentParameterMismatch",
              count=1, action="RunInstances")
    rc, out, err = ec2call(sim.env(), "RunInstances", f"ImageId={AMI}",
                           "MinCount=1", "MaxCount=1",
                           "InstanceType=t3.micro", f"SubnetId={SUBNET_B}",
                           "ClientToken=tok-mismatch-1")
    assert rc == 1
    r = out[0]
    assert r["code"] == "IdempotentParameterMismatch"
    assert r["attempts"] == 2
    assert r["retryable"] is False


def test_insufficient_capacity_is_a_500_answered_at_once(sim):
    # EC2's server error: HTTP 500, yet an answer for the caller (try
    # another zone, later), not something to retry till the deadline.
    sim.control("POST", "/az/us-east-1b", {"impaired": True})
    rc, out, err = ec2call(sim.env(), "--deadline", "20", "RunInstances",
                           f"ImageId={AMI}", "MinCount=1", "MaxCount=1",
                           "InstanceType=t3.micro", f"SubnetId={SUBNET_B}")
    assert rc == 1
    r = out[0]
    assert r["status"] == "aws-error"
    assert r["code"] == "InsufficientInstanceCapacity"
    assert r["http_status"] == 500
    assert r["attempts"] == 1
    assert r["elapsed"] < 10
    assert [e["status"] for e in sim.requests("RunInstances")] == [500]


@pytest.mark.parametrize("region,fips,dual,want", [
    ("us-east-1", None, None, "https://ec2.us-east-1.amazonaws.com"),
    ("cn-north-1", None, None, "https://ec2.cn-north-1.amazonaws.com.cn"),
    ("us-west-2", "true", None, "https://ec2-fips.us-west-2.amazonaws.com"),
    ("eu-west-1", None, "TRUE", "https://ec2.eu-west-1.api.aws"),
    ("us-gov-west-1", "true", None,
     "https://ec2.us-gov-west-1.amazonaws.com"),
    ("us-east-2", "false", "false", "https://ec2.us-east-2.amazonaws.com"),
])
def test_default_endpoint_follows_partition_fips_and_dualstack(
        sim, region, fips, dual, want):
    # `ec2call endpoint` builds the client and prints its endpoint;
    # nothing is sent anywhere.
    env = sim.env()
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        env.pop(k, None)
    env["AWS_REGION"] = region
    if fips is not None:
        env["AWS_USE_FIPS_ENDPOINT"] = fips
    if dual is not None:
        env["AWS_USE_DUALSTACK_ENDPOINT"] = dual
    rc, out, err = ec2call(env, "endpoint")
    assert rc == 0, err
    assert out[0]["endpoint"] == want
    assert want in err
    # An explicit endpoint still wins, as in the SDKs.
    env["AWS_ENDPOINT_URL"] = sim.ready["endpoint"]
    rc, out, err = ec2call(env, "endpoint")
    assert out[0]["endpoint"] == sim.ready["endpoint"]


def test_endpoint_settings_of_the_shared_config_file(sim):
    # use_fips_endpoint / use_dualstack_endpoint of the profile, below
    # the environment variables, as the SDKs rank them.
    path = os.path.join(sim.workdir, "config")
    with open(path, "w") as f:
        f.write("[default]\nuse_fips_endpoint = true\n\n"
                "[profile v6]\nuse_dualstack_endpoint = true\n")
    env = sim.env()
    env.pop("AWS_ENDPOINT_URL", None)
    env["AWS_CONFIG_FILE"] = path
    rc, out, err = ec2call(env, "endpoint")
    assert out[0]["endpoint"] == "https://ec2-fips.us-east-1.amazonaws.com"
    env["AWS_USE_FIPS_ENDPOINT"] = "false"
    rc, out, err = ec2call(env, "endpoint")
    assert out[0]["endpoint"] == "https://ec2.us-east-1.amazonaws.com"
    rc, out, err = ec2call(env, "--profile", "v6", "endpoint")
    assert out[0]["endpoint"] == "https://ec2.us-east-1.api.aws"


def test_bad_fips_setting_is_refused(sim):
    env = sim.env()
    env.pop("AWS_ENDPOINT_URL", None)
    env["AWS_USE_FIPS_ENDPOINT"] = "yes"
    rc, out, err = ec2call(env, "endpoint")
    assert rc == 1
    assert "AWS_USE_FIPS_ENDPOINT" in err


def test_dry_run_answers(sim):
    r = call(sim, "--dry-run", "RunInstances", f"ImageId={AMI}",
             "MinCount=1", "MaxCount=1", "InstanceType=t3.micro",
             f"SubnetId={SUBNET_B}", ok=False)
    assert r["status"] == "dry-run-ok"
    assert r["code"] == "DryRunOperation"
    r = call(sim, "--dry-run", "StopInstances", f"InstanceId.1={PROD}",
             ok=False)
    assert r["status"] == "dry-run-ok"
    # Nothing happened.
    r = call(sim, "DescribeInstances", f"InstanceId.1={PROD}")
    assert r["instances"][0]["state"] == "running"

    sim.control("POST", "/policy", {"deny": ["RunInstances"]})
    rc, out, err = ec2call(sim.env(), "--dry-run", "RunInstances",
                           f"ImageId={AMI}", "MinCount=1", "MaxCount=1")
    assert rc == 1
    assert out[0]["status"] == "aws-error"
    assert out[0]["code"] == "UnauthorizedOperation"
    assert out[0]["attempts"] == 1


def test_calls_queued_behind_the_budget_all_go_out_in_order(sim):
    # 40 calls started at once against a budget of 10 calls/s, burst 1:
    # they wait in the client's queue and each must go out once, in the
    # order the caller started them, within the budget.
    n, rate = 40, 10.0
    rc, out, err = ec2call(sim.env(), "--parallel", str(n), "--rate",
                           str(rate), "--burst", "1", "--deadline", "60",
                           "DescribeAvailabilityZones", timeout=120)
    assert rc == 0, err
    assert sorted(r["seq"] for r in out) == list(range(n))
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in out)
    by_seq = {r["seq"]: r["request_id"] for r in out}
    seen = sim.requests("DescribeAvailabilityZones")
    assert [e["request_id"] for e in seen] == \
        [by_seq[i] for i in range(n)]
    # The budget held: n calls at burst 1 span at least (n - 1) / rate.
    assert seen[-1]["time"] - seen[0]["time"] >= (n - 1) / rate * 0.9
