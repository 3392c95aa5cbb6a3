"""ec2sim judged by real AWS clients, real sshd/ssh and curl.

Debian's awscli and botocore parse every reply: if the XML were not
EC2's, they would fail.  Only 127.0.0.0/8 is used.
"""

import base64
import calendar
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from unittest import mock

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

SRC = os.environ.get("FOD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "ec2sim"))

from simfixture import BASIC, Ec2Sim, Ec2SimError  # noqa: E402

AWS = "/usr/bin/aws"
PYTHON_SIMCTL = "/usr/bin/python3"
PROD = BASIC["instance"]
EIP = BASIC["eip"]
VOL = BASIC["volumes"]["/dev/sdf"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with Ec2Sim("basic", tmp_path_factory.mktemp("sim"),
                delays={"pending": 0.3, "stopping": 0.3,
                        "shutting_down": 0.3, "detach": 0.2,
                        "attach": 0.2, "snapshot": 0.3,
                        # These check the sim's other rules one call
                        # after another; the lag has its own tests
                        # (test_consistency.py).
                        "describe_lag": 0}) as s:
        yield s


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlssim")
    policy = d / "policy.json"
    policy.write_text(json.dumps({"deny": ["TerminateInstances",
                                           "ec2:DeleteSnapshot"]}))
    with Ec2Sim("basic", d / "work", tls=True, policy=str(policy),
                delays={"describe_lag": 0}) as s:
        yield s


def client(sim, key=None, secret=None, token=None, **cfg):
    return botocore.session.get_session().create_client(
        "ec2", region_name=sim.region, endpoint_url=sim.endpoint,
        aws_access_key_id=key or sim.access_key,
        aws_secret_access_key=secret or sim.secret_key,
        aws_session_token=token, verify=sim.ca_file or True,
        config=Config(retries={"total_max_attempts": 1}, **cfg))


def err(excinfo):
    e = excinfo.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def aws(sim, *args, check=True):
    r = subprocess.run([AWS, "--endpoint-url", sim.endpoint, "--output",
                        "json", "ec2", *args],
                       env={**os.environ, **sim.env()},
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout) if r.stdout.strip() else {}
    return r


def http_get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def try_get(url, timeout=2):
    """For polling: None while the listener is not (yet) there."""
    try:
        return http_get(url, timeout)
    except OSError:
        return None


def raw_call(sim, body):
    """A correctly signed request with a body botocore would not build."""
    req = AWSRequest("POST", sim.endpoint, data=body.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(sim.access_key, sim.secret_key), "ec2",
              sim.region).add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers),
                               method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def launch(sim, c, az_subnet=BASIC["subnets"]["us-east-1a"], **kw):
    r = c.run_instances(ImageId=BASIC["image"], MinCount=1, MaxCount=1,
                        InstanceType="t3.micro", SubnetId=az_subnet, **kw)
    iid = r["Instances"][0]["InstanceId"]
    sim.wait_instance_state(iid, "running", timeout=15)
    return iid


def host_key_from_console(c, iid):
    # botocore base64-decodes the console output itself. The buffered
    # output comes console_lag after the boot: t3 is Nitro, ask the
    # latest.
    out = c.get_console_output(InstanceId=iid, Latest=True)[
        "Output"].encode()
    m = re.search(r"-----BEGIN SSH HOST KEY KEYS-----\n(.*?)\n"
                  r"-----END SSH HOST KEY KEYS-----", out.decode(), re.S)
    assert m, out
    return m.group(1).split()[:2]


# ---------------------------------------------------------------------------


def test_awscli_runs_a_failover_scenario(sim):
    r = aws(sim, "run-instances", "--image-id", BASIC["image"],
            "--count", "1", "--instance-type", "t3.micro",
            "--subnet-id", BASIC["subnets"]["us-east-1a"],
            "--key-name", "prod-key", "--client-token", "cli-scenario-1",
            "--security-group-ids", BASIC["security_group"],
            "--iam-instance-profile", "Name=prod-web-role",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Name,Value=cli-new}]")
    new = r["Instances"][0]["InstanceId"]
    assert r["Instances"][0]["State"]["Name"] == "pending"
    # Same ClientToken, same answer, no second instance.
    again = client(sim).run_instances(
        ImageId=BASIC["image"], MinCount=1, MaxCount=1,
        InstanceType="t3.micro", SubnetId=BASIC["subnets"]["us-east-1a"],
        KeyName="prod-key", ClientToken="cli-scenario-1",
        SecurityGroupIds=[BASIC["security_group"]],
        IamInstanceProfile={"Name": "prod-web-role"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "Name", "Value": "cli-new"}]}])
    assert again["Instances"][0]["InstanceId"] == new
    sim.wait_instance_state(new, "running")
    found = aws(sim, "describe-instances", "--filters",
                "Name=tag:Name,Values=cli-new",
                "Name=instance-state-name,Values=running")
    ids = [i["InstanceId"] for res in found["Reservations"]
           for i in res["Instances"]]
    assert ids == [new]

    vol = aws(sim, "create-volume", "--availability-zone", "us-east-1a",
              "--size", "4")["VolumeId"]
    sim.wait(lambda: sim.volume(vol)["state"] == "available")
    att = aws(sim, "attach-volume", "--volume-id", vol, "--instance-id",
              new, "--device", "/dev/sdh")
    assert att["State"] == "attaching"
    sim.wait(lambda: sim.volume(vol)["attachment"]["state"] == "attached")
    vols = aws(sim, "describe-volumes", "--filters",
               f"Name=attachment.instance-id,Values={new}")["Volumes"]
    assert [v["VolumeId"] for v in vols if v["Attachments"][0]["Device"]
            == "/dev/sdh"] == [vol]

    # Move the EIP: refused without AllowReassociation, then moved.
    r = aws(sim, "associate-address", "--allocation-id", EIP,
            "--instance-id", new, check=False)
    assert r.returncode != 0 and "Resource.AlreadyAssociated" in r.stderr
    assoc = aws(sim, "associate-address", "--allocation-id", EIP,
                "--instance-id", new, "--allow-reassociation")
    addrs = aws(sim, "describe-addresses", "--allocation-ids", EIP)
    assert addrs["Addresses"][0]["InstanceId"] == new
    assert addrs["Addresses"][0]["AssociationId"] == assoc["AssociationId"]

    snap = aws(sim, "create-snapshot", "--volume-id",
               BASIC["volumes"]["/dev/sdf"], "--description", "cli")
    assert snap["State"] == "pending"
    sim.wait(lambda: sim.snapshot(snap["SnapshotId"])["state"]
             == "completed")
    snaps = aws(sim, "describe-snapshots", "--owner-ids", "self",
                "--filters", "Name=volume-id,Values="
                + BASIC["volumes"]["/dev/sdf"])["Snapshots"]
    assert snap["SnapshotId"] in [x["SnapshotId"] for x in snaps]

    log = sim.requests()
    runs = [e for e in log if e["action"] == "RunInstances"]
    assert runs[0]["params"]["ClientToken"] == "cli-scenario-1"
    assert runs[0]["access_key"] == sim.access_key
    assert "Signature" not in json.dumps(runs[0]["params"])
    # Put the world back for the other tests.
    c = client(sim)
    c.associate_address(AllocationId=EIP, InstanceId=PROD,
                        AllowReassociation=True)
    c.terminate_instances(InstanceIds=[new])


def test_wrong_secret_and_wrong_key_are_refused(sim):
    with pytest.raises(ClientError) as e:
        client(sim, secret="x" * 40).describe_instances()
    assert err(e) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as e:
        client(sim, key="AKIANOTKNOWN00000000").describe_instances()
    assert err(e) == ("AuthFailure", 401)
    codes = [x["code"] for x in sim.requests(action="DescribeInstances")]
    assert "SignatureDoesNotMatch" in codes and "AuthFailure" in codes


class _SkewedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return datetime.datetime.utcnow() - datetime.timedelta(minutes=6)


def test_skewed_clock_is_refused(sim):
    # "Error codes for the Amazon EC2 API": more than 5 minutes off is
    # AuthFailure with a "Signature expired" message; more than 15 is
    # RequestExpired.
    import types
    fake = types.SimpleNamespace(
        datetime=_SkewedDatetime, timezone=datetime.timezone,
        timedelta=datetime.timedelta)
    c = client(sim)
    patches = [mock.patch("botocore.auth.datetime", fake)]
    try:
        import botocore.crt.auth  # noqa: F401  (awscrt signs if present)
        patches.append(mock.patch("botocore.crt.auth.datetime", fake))
    except ImportError:
        pass
    for p in patches:
        p.start()
    try:
        with pytest.raises(ClientError) as e:
            c.describe_instances()
    finally:
        for p in patches:
            p.stop()
    assert err(e) == ("AuthFailure", 401)
    assert e.value.response["Error"]["Message"].startswith(
        "Signature expired: ")
    assert "(" in e.value.response["Error"]["Message"]
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["date"]
    c.describe_instances()  # a correct clock works again

    # The other way round: the sim's clock is off; its Date header says
    # by how much, so a client can correct itself.
    sim.clock(offset=1200)
    try:
        with pytest.raises(ClientError) as e:
            c.describe_instances()
        assert err(e) == ("RequestExpired", 400)
        assert e.value.response["Error"]["Message"] == \
            "Request has expired."
        date = e.value.response["ResponseMetadata"]["HTTPHeaders"]["date"]
        from email.utils import parsedate_to_datetime
        skew = parsedate_to_datetime(date).timestamp() - time.time()
        assert 1100 < skew < 1300
        # Our clock ahead of EC2's by 6 minutes: not yet current.
        sim.clock(offset=-360)
        with pytest.raises(ClientError) as e:
            c.describe_instances()
        assert err(e) == ("AuthFailure", 401)
        assert e.value.response["Error"]["Message"].startswith(
            "Signature not yet current: ")
    finally:
        sim.clock(offset=0)


def test_an_instance_logs_in_with_the_tests_shell_not_the_hosts(sim):
    """The instances' sshd runs a login through a passwd of the sim's own:
    the user's home is in the sim's workdir and its shell is /bin/sh, so
    no SSH check ever runs the host account's login shell or dotfiles."""
    argv = sim.ssh_argv(sim.instance(PROD)["ip"],
                        'echo "$HOME"; readlink /proc/$$/exe')
    # The module's sim may still be booting its instances.
    out = sim.wait(lambda: (lambda p: p if p.returncode == 0 else None)(
        subprocess.run(argv, capture_output=True, text=True, timeout=20)),
        timeout=30, interval=0.5, what="ssh to the instance")
    home, shell = out.stdout.split()
    assert home.startswith(str(sim.workdir)), home
    assert home != os.path.expanduser("~"), home
    assert os.path.basename(shell) in ("dash", "sh"), shell


def test_ssh_and_curl_follow_the_eip(sim, tmp_path):
    eip_ip = sim.address(EIP)["ip"]
    assert http_get(sim.url(eip_ip)) == f"ok {PROD}\n"
    out = subprocess.run(sim.ssh_argv(eip_ip, "echo", "shell-ok"),
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout == "shell-ok\n", out.stderr
    curl = subprocess.run(["curl", "-sf", sim.url(eip_ip, "/data")],
                          capture_output=True, text=True, timeout=10)
    data = json.loads(curl.stdout)
    assert [v["data"] for v in data["volumes"]] == [
        sim.volume(BASIC["volumes"]["/dev/sdf"])["data"],
        sim.volume(BASIC["volumes"]["/dev/sdg"])["data"]]

    # A failover by hand: new instance, fence the old one, move the data
    # volume and the address.
    c = client(sim)
    new = launch(sim, c)
    kt, kb = host_key_from_console(c, new)
    c.stop_instances(InstanceIds=[PROD], Force=True)
    sim.wait_instance_state(PROD, "stopped")
    vol = BASIC["volumes"]["/dev/sdf"]
    c.detach_volume(VolumeId=vol)
    sim.wait(lambda: sim.volume(vol)["state"] == "available")
    c.attach_volume(VolumeId=vol, InstanceId=new, Device="/dev/sdf")
    sim.wait(lambda: sim.volume(vol)["attachment"]["state"] == "attached")
    c.associate_address(AllocationId=EIP, InstanceId=new,
                        AllowReassociation=True)

    def health():
        return try_get(sim.url(eip_ip))
    sim.wait(lambda: health() == f"ok {new}\n", what="EIP moved")
    moved = json.loads(http_get(sim.url(eip_ip, "/data")))
    assert moved["volumes"][0]["data"] == sim.volume(vol)["data"]
    assert moved["volumes"][0]["data"].startswith("orders-db")

    # The seeded known_hosts holds the old instance's key: strict
    # checking refuses the new one ...
    old = subprocess.run(sim.ssh_argv(eip_ip, "true"), capture_output=True,
                         text=True, timeout=20)
    assert old.returncode != 0
    assert "IDENTIFICATION HAS CHANGED" in old.stderr \
        or "Host key verification failed" in old.stderr
    # ... and the key from GetConsoleOutput opens it.
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{sim.host(eip_ip)} {kt} {kb}\n")
    out = subprocess.run(sim.ssh_argv(eip_ip, "echo", "new-shell",
                                      known_hosts=kh),
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout == "new-shell\n", out.stderr

    # Restore the basic world for the tests that follow.
    c.detach_volume(VolumeId=vol)
    sim.wait(lambda: sim.volume(vol)["state"] == "available")
    c.start_instances(InstanceIds=[PROD])
    sim.wait_instance_state(PROD, "running")
    c.attach_volume(VolumeId=vol, InstanceId=PROD, Device="/dev/sdf")
    c.associate_address(AllocationId=EIP, InstanceId=PROD,
                        AllowReassociation=True)
    c.terminate_instances(InstanceIds=[new])
    sim.wait(lambda: health() == f"ok {PROD}\n", what="EIP back")


def test_imds_v2_token_and_rotating_credentials(sim):
    def req(path, method="GET", headers=None):
        r = urllib.request.Request(sim.imds + path, method=method,
                                   headers=headers or {})
        try:
            with urllib.request.urlopen(r, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    base = "/latest/meta-data/iam/security-credentials/"
    assert req(base)[0] == 401
    assert req("/latest/api/token", "PUT")[0] == 400
    st, token = req("/latest/api/token", "PUT",
                    {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert st == 200
    hdr = {"X-aws-ec2-metadata-token": token}
    assert req(base, headers={"X-aws-ec2-metadata-token": "nope"})[0] == 401
    st, role = req(base, headers=hdr)
    assert st == 200 and role == sim.role
    first = json.loads(req(base + role, headers=hdr)[1])
    assert first["Code"] == "Success" and first["Expiration"]

    c1 = client(sim, first["AccessKeyId"], first["SecretAccessKey"],
                first["Token"])
    c1.describe_instances()
    with pytest.raises(ClientError) as e:
        client(sim, first["AccessKeyId"],
               first["SecretAccessKey"]).describe_instances()
    assert err(e) == ("AuthFailure", 401)

    sim.imds_control(rotate=True)
    second = json.loads(req(base + role, headers=hdr)[1])
    assert second["AccessKeyId"] != first["AccessKeyId"]
    c1.describe_instances()       # previous credentials still accepted
    sim.imds_control(rotate=True)
    with pytest.raises(ClientError) as e:
        c1.describe_instances()   # two rotations old: gone
    assert err(e) == ("AuthFailure", 401)
    third = json.loads(req(base + role, headers=hdr)[1])
    client(sim, third["AccessKeyId"], third["SecretAccessKey"],
           third["Token"]).describe_volumes()


def test_dry_run(sim):
    c = client(sim)
    with pytest.raises(ClientError) as e:
        c.stop_instances(InstanceIds=[PROD], DryRun=True)
    assert err(e) == ("DryRunOperation", 412)
    assert sim.instance(PROD)["state"] == "running"
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId=BASIC["volumes"]["/dev/sdg"],
                        InstanceId=PROD, Device="/dev/sdh", DryRun=True)
    assert err(e)[0] == "VolumeInUse"   # a dry run still checks


def test_policy_denial_over_tls(tls_sim):
    assert tls_sim.endpoint.startswith("https://") and tls_sim.ca_file
    out = aws(tls_sim, "describe-instances")
    assert out["Reservations"][0]["Instances"][0]["InstanceId"] == PROD
    r = aws(tls_sim, "terminate-instances", "--instance-ids", PROD,
            "--dry-run", check=False)
    assert r.returncode != 0 and "UnauthorizedOperation" in r.stderr
    c = client(tls_sim)
    with pytest.raises(ClientError) as e:
        c.terminate_instances(InstanceIds=[PROD])
    assert err(e) == ("UnauthorizedOperation", 403)
    with pytest.raises(ClientError) as e:
        c.stop_instances(InstanceIds=[PROD], DryRun=True)
    assert err(e) == ("DryRunOperation", 412)
    assert tls_sim.instance(PROD)["state"] == "running"


def test_throttling_and_connection_faults(sim):
    c = client(sim, read_timeout=1, connect_timeout=2)
    sim.fault(kind="throttle", action="DescribeVolumes", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            c.describe_volumes()
        assert err(e) == ("RequestLimitExceeded", 503)
    c.describe_volumes()
    sim.fault(kind="error500", action="*", count=1)
    with pytest.raises(ClientError) as e:
        c.describe_addresses()
    assert err(e) == ("InternalError", 500)
    sim.fault(kind="drop", action="DescribeImages", count=1)
    with pytest.raises(Exception) as e:
        c.describe_images(Owners=["self"])
    assert not isinstance(e.value, ClientError)
    sim.fault(kind="hang", action="DescribeImages", count=1, seconds=30)
    with pytest.raises(Exception) as e:
        c.describe_images(Owners=["self"])
    assert "timeout" in str(e.value).lower()
    c.describe_images(Owners=["self"])
    codes = [x["code"] for x in sim.requests(action="DescribeImages")][-3:]
    assert codes == ["dropped", "hung", "OK"]


def test_faults_after_the_action_was_carried_out(sim):
    # drop_after / error500_after: the action happens, the reply is lost
    # or a 500. Offered for every action (here: a create, an attach, an
    # association).
    c = client(sim, read_timeout=5, connect_timeout=2)
    before = set(sim.state()["snapshots"])
    sim.fault(kind="drop_after", action="CreateSnapshot", count=1)
    with pytest.raises(Exception) as e:
        c.create_snapshot(VolumeId=VOL)
    assert not isinstance(e.value, ClientError)
    made = set(sim.state()["snapshots"]) - before
    assert len(made) == 1
    sim.fault(kind="error500_after", action="CreateSnapshot", count=1)
    with pytest.raises(ClientError) as e:
        c.create_snapshot(VolumeId=VOL)
    assert err(e) == ("InternalError", 500)
    assert len(set(sim.state()["snapshots"]) - before) == 2
    log = sim.requests(action="CreateSnapshot")[-2:]
    assert [x["code"] for x in log] == ["dropped_after", "InternalError"]
    assert all(x.get("done") for x in log)
    # A refused action stays refused: the fault is spent, nothing done.
    sim.fault(kind="drop_after", action="CreateSnapshot", count=1)
    with pytest.raises(ClientError) as e:
        c.create_snapshot(VolumeId="vol-0123456789abcdef0")
    assert err(e)[0] == "InvalidVolume.NotFound"


def test_insufficient_capacity_is_a_server_error(sim):
    # "Error codes for the Amazon EC2 API" lists it under server errors
    # (500-series).
    c = client(sim)
    sim.impair_az("us-east-1c")
    try:
        with pytest.raises(ClientError) as e:
            c.run_instances(ImageId=BASIC["image"], MinCount=1,
                            MaxCount=1, InstanceType="t3.micro",
                            SubnetId=BASIC["subnets"]["us-east-1c"])
        assert err(e) == ("InsufficientInstanceCapacity", 500)
    finally:
        sim.impair_az("us-east-1c", False)
    sim.fault(kind="error", code="InsufficientInstanceCapacity",
              action="RunInstances", count=1)
    with pytest.raises(ClientError) as e:
        c.run_instances(ImageId=BASIC["image"], MinCount=1, MaxCount=1,
                        InstanceType="t3.micro",
                        SubnetId=BASIC["subnets"]["us-east-1b"])
    assert err(e) == ("InsufficientInstanceCapacity", 500)


def test_role_credentials_stay_valid_until_their_expiration(sim):
    # New role credentials come before the old expire; the old stay
    # good until then, however many rotations a busy client sees.
    sim.imds_control(lifetime=10, rotate=True)
    base = "/latest/meta-data/iam/security-credentials/"
    st, token = imds_get(sim, "/latest/api/token", "PUT",
                         {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    hdr = {"X-aws-ec2-metadata-token": token}
    first = json.loads(imds_get(sim, base + sim.role, headers=hdr)[1])
    c1 = client(sim, first["AccessKeyId"], first["SecretAccessKey"],
                first["Token"])
    seen = set()
    # New ones come 5 s before the first expire (half the lifetime).
    end = first_expiry(first) - 1.5
    while time.time() < end:
        c1.describe_availability_zones()
        seen.add(json.loads(imds_get(sim, base + sim.role,
                                     headers=hdr)[1])["AccessKeyId"])
        time.sleep(0.2)
    assert len(seen) >= 2
    time.sleep(max(0.0, first_expiry(first) - time.time() + 1.5))
    with pytest.raises(ClientError) as e:
        c1.describe_availability_zones()
    # Expired temporary credentials: RequestExpired (the error page).
    assert err(e) == ("RequestExpired", 400)
    sim.imds_control(lifetime=3600, rotate=True)


def imds_get(sim, path, method="GET", headers=None):
    r = urllib.request.Request(sim.imds + path, method=method,
                               headers=headers or {})
    with urllib.request.urlopen(r, timeout=5) as resp:
        return resp.status, resp.read().decode()


def first_expiry(creds):
    return calendar.timegm(time.strptime(creds["Expiration"],
                                         "%Y-%m-%dT%H:%M:%SZ"))


def test_unknown_parameter_and_action_are_rejected(sim):
    st, body = raw_call(sim, "Action=DescribeInstances&Version=2016-11-15"
                             "&InstanceId.1=" + PROD + "&Bogus.1=x")
    assert st == 400 and "<Code>UnknownParameter</Code>" in body
    st, body = raw_call(sim, "Action=DescribeInstances&Version=2016-11-15"
                             "&Filter.1.Name=instance-id"
                             "&Filter.1.Value.1=" + PROD)
    assert st == 200 and PROD in body
    st, body = raw_call(sim, "Action=LaunchRocket&Version=2016-11-15")
    assert st == 400 and "<Code>InvalidAction</Code>" in body
    st, body = raw_call(sim, "Action=RunInstances&Version=2016-11-15"
                             "&ImageId=" + BASIC["image"])
    assert st == 400 and "<Code>MissingParameter</Code>" in body


def test_state_rules(sim):
    c = client(sim)
    new_b = launch(sim, c, BASIC["subnets"]["us-east-1b"])
    vol = c.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    sim.wait(lambda: sim.volume(vol)["state"] == "available")
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId=vol, InstanceId=new_b, Device="/dev/sdf")
    assert err(e)[0] == "InvalidVolume.ZoneMismatch"
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId=vol, InstanceId=PROD, Device="/dev/sdf")
    assert err(e)[0] == "InvalidParameterValue"      # device in use
    c.attach_volume(VolumeId=vol, InstanceId=PROD, Device="/dev/sdj")
    sim.wait(lambda: sim.volume(vol)["attachment"]["state"] == "attached")

    # A busy detach stays busy until forced.
    sim.set_volume(vol, detach_busy=True)
    assert c.detach_volume(VolumeId=vol)["State"] == "busy"
    time.sleep(0.5)
    assert sim.volume(vol)["attachment"]["state"] == "busy"
    c.detach_volume(VolumeId=vol, Force=True)
    sim.wait(lambda: sim.volume(vol)["state"] == "available")

    # An instance stuck in 'stopping' until a forced stop.
    sim.instance_fault(new_b, stuck_stopping=True)
    c.stop_instances(InstanceIds=[new_b])
    time.sleep(0.6)
    assert sim.instance(new_b)["state"] == "stopping"
    c.stop_instances(InstanceIds=[new_b], Force=True)
    sim.wait_instance_state(new_b, "stopped")

    # An impaired AZ: no capacity, says so, its instances unreachable.
    sim.impair_az("us-east-1a")
    try:
        with pytest.raises(ClientError) as e:
            c.run_instances(ImageId=BASIC["image"], MinCount=1, MaxCount=1,
                            SubnetId=BASIC["subnets"]["us-east-1a"])
        assert err(e)[0] == "InsufficientInstanceCapacity"
        zones = {z["ZoneName"]: z["State"] for z in
                 c.describe_availability_zones()["AvailabilityZones"]}
        assert zones["us-east-1a"] == "impaired"
        st = c.describe_instance_status(InstanceIds=[PROD])
        assert st["InstanceStatuses"][0]["SystemStatus"]["Status"] == \
            "impaired"
    finally:
        sim.impair_az("us-east-1a", impaired=False)
    st = c.describe_instance_status(InstanceIds=[PROD])
    assert st["InstanceStatuses"][0]["SystemStatus"]["Status"] == "ok"
    c.terminate_instances(InstanceIds=[new_b])


def test_instance_faults(sim):
    ip = sim.instance(PROD)["ip"]
    sim.instance_fault(PROD, "http_down")
    sim.wait(lambda: sim.instance(PROD)["http"] == "off")

    def refused():
        try:
            http_get(sim.url(ip), timeout=2)
        except urllib.error.URLError as e:
            return isinstance(e.reason, ConnectionRefusedError)
        except OSError:
            pass    # caught the server while it was going away
        return False
    sim.wait(refused, what="HTTP refused")
    ok = subprocess.run(sim.ssh_argv(ip, "true"), capture_output=True,
                        timeout=20)
    assert ok.returncode == 0          # the lost-shell case's opposite

    sim.instance_fault(PROD, "blackhole")
    time.sleep(0.3)
    s = socket.create_connection((ip, sim.ssh_port), timeout=2)
    s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        s.recv(100)                    # accepted, then silence
    s.close()
    sim.instance_fault(PROD, "none")
    sim.wait(lambda: try_get(sim.url(ip)) == f"ok {PROD}\n",
             what="HTTP back")


def test_sigterm_stops_everything(tmp_path):
    s = Ec2Sim("basic", tmp_path / "sim").start()
    try:
        ip = s.instance(PROD)["ip"]
        s.wait(lambda: try_get(s.url(ip)) == f"ok {PROD}\n")
        proc = s.proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        for port in (s.ssh_port, s.http_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, port), timeout=2)
    finally:
        s.stop()


def test_baked_image_carries_data_and_honours_nodevice(sim):
    c = client(sim)
    sdf = BASIC["volumes"]["/dev/sdf"]
    sim.set_volume(sdf, data="orders-db: baked")
    img = c.create_image(InstanceId=PROD, Name="prod-web-baked",
                         NoReboot=True, BlockDeviceMappings=[
                             {"DeviceName": "/dev/sdg", "NoDevice": ""}])
    iid = img["ImageId"]
    sim.wait(lambda: c.describe_images(ImageIds=[iid])["Images"][0]
             ["State"] == "available", interval=0.2)
    devs = [m["DeviceName"] for m in c.describe_images(
        ImageIds=[iid])["Images"][0]["BlockDeviceMappings"]]
    assert devs == ["/dev/xvda", "/dev/sdf"]
    r = c.run_instances(ImageId=iid, MinCount=1, MaxCount=1,
                        SubnetId=BASIC["subnets"]["us-east-1b"])
    new = r["Instances"][0]["InstanceId"]
    sim.wait_instance_state(new, "running")
    ip = sim.instance(new)["ip"]
    data = json.loads(sim.wait(lambda: try_get(sim.url(ip, "/data"))))
    assert [(v["device"], v["data"]) for v in data["volumes"]] == [
        ("/dev/sdf", "orders-db: baked")]
    assert data["volumes"][0]["volume_id"] != sdf
    c.terminate_instances(InstanceIds=[new])


def test_pagination_and_filters(sim):
    c = client(sim)
    vol = BASIC["volumes"]["/dev/sdg"]
    for n in range(6):
        c.create_snapshot(VolumeId=vol, Description=f"page-{n}")
    pages, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        r = c.describe_snapshots(OwnerIds=["self"], MaxResults=5, **kw)
        assert len(r["Snapshots"]) <= 5
        pages.append([s["SnapshotId"] for s in r["Snapshots"]])
        token = r.get("NextToken")
        if not token:
            break
    everything = [s["SnapshotId"] for s in
                  c.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
    assert len(pages) >= 2
    assert [x for p in pages for x in p] == everything
    mine = c.describe_snapshots(Filters=[
        {"Name": "description", "Values": ["page-*"]},
        {"Name": "volume-id", "Values": [vol]}])["Snapshots"]
    assert sorted(s["Description"] for s in mine) == [
        f"page-{n}" for n in range(6)]
    with pytest.raises(ClientError) as e:
        c.describe_instances(Filters=[{"Name": "no-such-filter",
                                       "Values": ["x"]}])
    assert err(e)[0] == "InvalidParameterValue"


def test_timing_profile_aws_loads_and_draws_within_its_ranges(tmp_path):
    """--timing aws: every delay the sim models has a sourced range, the
    sim runs on those ranges, and each event draws within its range."""
    import sim_timing
    import sim_world
    prof = sim_timing.PROFILES["aws"]
    # Complete: a delay the sim models without a range here would run
    # at its test default under --timing aws.
    assert set(sim_world.DEFAULT_DELAYS) <= set(prof)
    for key, (lo, hi, source) in prof.items():
        assert 0 <= lo <= hi and source, key

    with Ec2Sim("basic", tmp_path / "sim", timing="aws",
                delays={"pending": [0.1, 0.3]}) as s:
        d = s.state()["delays"]
        for key in sim_world.DEFAULT_DELAYS:
            want = [0.1, 0.3] if key == "pending" else list(prof[key][:2])
            assert d[key] == want, key
        # Each event draws its own delay from the range (World.delay,
        # which every delayed event goes through).
        for key in sim_world.DEFAULT_DELAYS:
            lo, hi = d[key]
            world = types.SimpleNamespace(delays=d)
            draws = [sim_world.World.delay(world, key) for _ in range(200)]
            assert all(lo <= v <= hi for v in draws), key
            assert lo == hi or len(set(draws)) > 1, key
        # A launch runs on the drawn delay (kept short above).
        c = client(s)
        iid = c.run_instances(ImageId=BASIC["image"], MinCount=1,
                              MaxCount=1)["Instances"][0]["InstanceId"]
        s.wait_instance_state(iid, "running", timeout=30)
        # Ranges through the control API and simctl; a bad range is
        # refused; "default" puts the fixed test delays back.
        assert s.set_delays(attach=[1, 2])["attach"] == [1.0, 2.0]
        with pytest.raises(Ec2SimError):
            s.set_delays(attach=[2, 1])
        out = subprocess.run(
            [PYTHON_SIMCTL, os.path.join(SRC, "tests", "ec2sim", "simctl"),
             "--control", s.control, "timing", "default"],
            capture_output=True, text=True, timeout=30, check=True)
        assert json.loads(out.stdout)["delays"] == sim_world.DEFAULT_DELAYS
        assert s.set_timing("aws")["delays"]["boot"] == list(
            prof["boot"][:2])


def test_http_servers_ask_no_dns():
    """http.server's own server_bind asks DNS for the name of the address
    it binds (socket.getfqdn): a query to the host's resolver, off
    loopback, from every ec2sim and test HTTP server. They bind without
    it."""
    import ec2sim
    import sim_net
    sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
    import servers
    with mock.patch("socket.getfqdn",
                    side_effect=AssertionError("getfqdn: a DNS query")):
        for make in (
                lambda: ec2sim.Server(("127.0.0.1", 0),
                                      ec2sim.BaseHTTPRequestHandler),
                lambda: sim_net._InstanceHTTPServer(
                    ("127.0.0.1", 0), ec2sim.BaseHTTPRequestHandler),
                lambda: servers.HttpServer("127.0.0.1", 0, {})):
            srv = make()
            try:
                assert srv.server_name == "127.0.0.1"
                assert srv.server_port > 0
            finally:
                srv.server_close()
def stop_raw(sim, iid, **members):
    body = "Action=StopInstances&Version=2016-11-15&InstanceId.1=" + iid
    for k, v in members.items():
        body += f"&{k}={v}"
    return raw_call(sim, body)


def test_stop_is_graceful_first_unless_skip_os_shutdown(sim):
    # Methods for stopping an instance: Force attempts the graceful OS
    # shutdown first and powers off only after its timeout;
    # SkipOsShutdown bypasses it.  A hung OS shows the difference.
    c = client(sim)
    hung = launch(sim, c)
    healthy = launch(sim, c)
    sim.instance_fault(hung, "os_hung")
    assert sim.state()["delays"]["graceful_stop"] > 0    # by default
    sim.set_delays(graceful_stop=600)
    try:
        # Without Force a hung OS never finishes its shutdown.
        assert stop_raw(sim, hung)[0] == 200
        assert stop_raw(sim, healthy, Force="true")[0] == 200
        sim.wait_instance_state(healthy, "stopped")
        assert sim.instance(hung)["state"] == "stopping"
        # Force waits for the graceful attempt (600 s here)...
        assert stop_raw(sim, hung, Force="true")[0] == 200
        c.start_instances(InstanceIds=[healthy])
        sim.wait_instance_state(healthy, "running", timeout=15)
        assert stop_raw(sim, healthy, Force="true")[0] == 200
        sim.wait_instance_state(healthy, "stopped")
        assert sim.instance(hung)["state"] == "stopping"
        # ...SkipOsShutdown does not wait for the OS at all.
        st, body = stop_raw(sim, hung, Force="true", SkipOsShutdown="true")
        assert st == 200, body
        sim.wait_instance_state(hung, "stopped")
        # Force alone ends after graceful_stop.
        sim.set_delays(graceful_stop=0.2)
        c.start_instances(InstanceIds=[hung])
        sim.wait_instance_state(hung, "running", timeout=15)
        assert stop_raw(sim, hung, Force="true")[0] == 200
        sim.wait_instance_state(hung, "stopped")
        # An endpoint that predates the member refuses it.
        sim.refuse_members("StopInstances.SkipOsShutdown")
        st, body = stop_raw(sim, hung, SkipOsShutdown="true")
        assert st == 400 and "<Code>UnknownParameter</Code>" in body
        assert "SkipOsShutdown" in body
        sim.refuse_members()
        assert stop_raw(sim, hung, SkipOsShutdown="true")[0] == 200
    finally:
        sim.refuse_members()
        sim.set_delays(graceful_stop=3.0)
        c.terminate_instances(InstanceIds=[hung, healthy])
def test_snapshot_owners_and_public_snapshots(sim):
    """DescribeSnapshots: without an owner, every snapshot the caller may
    restore, public ones of other accounts included; Owner=self and the
    owner-id filter narrow it."""
    c = client(sim)
    public = set(BASIC["public_snapshots"].values())
    every = {s["SnapshotId"]: s for s in c.describe_snapshots()["Snapshots"]}
    assert public <= set(every)
    assert {every[s]["OwnerId"] for s in public} != {BASIC["account"]}
    mine = {s["SnapshotId"] for s in
            c.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not mine & public
    assert set(BASIC["snapshots"].values()) <= mine
    assert {s["OwnerId"] for s in c.describe_snapshots(
        OwnerIds=["self"])["Snapshots"]} == {BASIC["account"]}
    by_filter = {s["SnapshotId"] for s in c.describe_snapshots(Filters=[
        {"Name": "owner-id", "Values": [BASIC["account"]]}])["Snapshots"]}
    assert by_filter == mine


def test_create_volume_type_iops_and_throughput(sim):
    c = client(sim)
    az = "us-east-1b"
    snap = BASIC["snapshots"][BASIC["volumes"]["/dev/sdf"]]
    # Scenario volumes: io2 and gp3 with their own performance.
    vols = {v["VolumeId"]: v for v in c.describe_volumes(
        VolumeIds=list(BASIC["volumes"].values()))["Volumes"]}
    db = vols[BASIC["volumes"]["/dev/sdf"]]
    assert (db["VolumeType"], db["Iops"]) == ("io2", 4000)
    up = vols[BASIC["volumes"]["/dev/sdg"]]
    assert (up["VolumeType"], up["Iops"], up["Throughput"]) == \
        ("gp3", 6000, 250)
    # CreateVolume's default type is gp2: baseline IOPS, no throughput.
    v = c.create_volume(AvailabilityZone=az, SnapshotId=snap)
    assert v["VolumeType"] == "gp2" and v["Iops"] == 100
    assert "Throughput" not in v
    v = c.create_volume(AvailabilityZone=az, SnapshotId=snap,
                        VolumeType="io2", Iops=4000)
    assert (v["VolumeType"], v["Iops"]) == ("io2", 4000)
    v = c.create_volume(AvailabilityZone=az, Size=10, VolumeType="gp3")
    assert (v["Iops"], v["Throughput"]) == (3000, 125)
    got = c.describe_volumes(VolumeIds=[v["VolumeId"]])["Volumes"][0]
    assert (got["VolumeType"], got["Iops"], got["Throughput"]) == \
        ("gp3", 3000, 125)
    for kw, code in (({"VolumeType": "io2"}, "MissingParameter"),
                     ({"Iops": 3000}, "InvalidParameterCombination"),
                     ({"VolumeType": "io1", "Iops": 200, "Throughput": 200},
                      "InvalidParameterCombination")):
        with pytest.raises(ClientError) as e:
            c.create_volume(AvailabilityZone=az, Size=10, **kw)
        assert err(e)[0] == code, kw


@pytest.mark.parametrize("state", ["available", "information", "impaired",
                                   "unavailable", "constrained"])
def test_availability_zone_states(sim, state):
    c = client(sim)
    az = "us-east-1c"
    try:
        assert sim.set_az_state(az, state)["state"] == state
        z = c.describe_availability_zones(ZoneNames=[az])[
            "AvailabilityZones"][0]
        assert z["State"] == state
        assert bool(z["Messages"]) == (state != "available")
        same = c.describe_availability_zones(Filters=[
            {"Name": "state", "Values": [state]}])["AvailabilityZones"]
        assert az in {x["ZoneName"] for x in same}
        # Only impaired and unavailable zones lose their capacity.
        r = aws(sim, "run-instances", "--image-id", BASIC["image"],
                "--subnet-id", BASIC["subnets"][az], "--dry-run",
                check=False)
        if state in ("impaired", "unavailable"):
            assert "InsufficientInstanceCapacity" in r.stderr
        else:
            assert "DryRunOperation" in r.stderr
    finally:
        sim.set_az_state(az, "available")


def test_device_names_with_and_without_dev(sim):
    """AttachVolume's Device: "/dev/sdh or xvdh" (API reference)."""
    c = client(sim)
    vid = c.create_volume(AvailabilityZone=BASIC["az"], Size=1)["VolumeId"]
    sim.wait(lambda: sim.volume(vid)["state"] == "available")
    a = c.attach_volume(VolumeId=vid, InstanceId=PROD, Device="xvdh")
    assert a["Device"] == "xvdh"
    sim.wait(lambda: sim.volume(vid)["attachment"]["state"] == "attached")
    c.detach_volume(VolumeId=vid)
    sim.wait(lambda: sim.volume(vid)["state"] == "available")
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId=vid, InstanceId=PROD, Device="/dev/hdh")
    assert err(e)[0] == "InvalidParameterValue"


SSH_PORT = 22


def _from(src, ip, port):
    """First bytes a server sends to a connection from src, b"" or None
    when it dropped the connection."""
    try:
        s = socket.create_connection((ip, port), timeout=10,
                                     source_address=(src, 0))
    except (ConnectionResetError, BrokenPipeError):
        return None     # dropped before connect() returned
    try:
        if port != SSH_PORT:
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        return s.recv(100)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return None
    finally:
        s.close()


def test_cut_drops_one_source_and_undo_restores_it(sim):
    """A test world's cut: the instance's servers drop one client
    address, through the Elastic IP as directly, and see the others'
    own addresses (the EIP forwards without hiding the source)."""
    global SSH_PORT
    SSH_PORT = sim.ssh_port
    eip_ip = sim.address(EIP)["ip"]
    ip = sim.instance(PROD)["ip"]
    cut, other = "127.0.0.9", "127.0.0.10"
    out = sim.cut(PROD, [cut])
    assert out["sources"] == [cut]
    try:
        for dest in (eip_ip, ip):
            assert not _from(cut, dest, sim.http_port), (dest, sim.sources(PROD))
            assert _from(other, dest, sim.http_port).startswith(
                b"HTTP/1.0 200")
        assert not _from(cut, eip_ip, sim.ssh_port)
        assert _from(other, eip_ip, sim.ssh_port).startswith(b"SSH-2.0")
        seen = sim.sources(PROD)["seen"]
        assert seen[cut]["http_cut"] >= 2 and seen[cut]["ssh_cut"] >= 1
        assert seen[other]["http"] >= 2 and seen[other]["ssh"] >= 1
        assert "http" not in seen[cut] and "ssh" not in seen[cut]
    finally:
        assert sim.uncut(PROD)["sources"] == []
    assert _from(cut, eip_ip, sim.http_port).startswith(b"HTTP/1.0 200")
    assert _from(cut, eip_ip, sim.ssh_port).startswith(b"SSH-2.0")
