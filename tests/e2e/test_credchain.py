"""The AWS credential chain against ec2sim, source by source, in
botocore's order: assume-role (source_profile, credential_source),
web identity, credential_process, container credentials. The real
client (tests/tools/ec2call on a libev loop) signs EC2 calls with what
each source gives; ec2sim's STS and container agent issue short-lived
credentials and check every EC2 call's key and session token, so a
call signed with anything stale fails. Nothing here reads the host's
~/.aws: HOME, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE point
into the test's directory."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from awsclient import bare_sim, ec2call  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/failoverd"
PY = "/usr/bin/python3"


@pytest.fixture
def sim():
    with bare_sim("test_credchain.") as s:
        yield s


def env_for(sim, **extra):
    """No static keys, no IMDS unless asked: only what the test sets."""
    env = sim.env(static=False)
    env.pop("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    env["HOME"] = sim.workdir
    env.update(extra)
    return env


def write(sim, name, text, mode=0o600):
    path = os.path.join(sim.workdir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def no_secret(sim, text):
    """Neither the static secret nor any session token (ec2sim's start
    with IQoJec2sim) nor a secret of STS's issue reaches the output."""
    assert sim.ready["secret_key"] not in text
    assert "IQoJec2sim" not in text


def ec2_log(sim):
    return sim.requests("DescribeAvailabilityZones")


def run_repeat(sim, env, n=8, *opts):
    rc, out, err = ec2call(env, *opts, "--repeat", str(n), "--interval",
                           "1", "DescribeAvailabilityZones", timeout=120)
    assert rc == 0, err
    assert [r["status"] for r in out] == ["ok"] * n, out
    return err


def static_profile(sim, name="base"):
    return write(sim, "credentials",
                 f"[{name}]\naws_access_key_id = {sim.ready['access_key']}"
                 f"\naws_secret_access_key = {sim.ready['secret_key']}\n")


def test_assume_role_with_source_profile_is_refreshed_before_expiry(sim):
    sim.control("POST", "/sts", {"lifetime": 6, "external_id": "ext-42"})
    cred = static_profile(sim)
    conf = write(sim, "config",
                 f"[profile ops]\nrole_arn = {ROLE}\nsource_profile = base"
                 "\nexternal_id = ext-42\nrole_session_name = fod-ops\n"
                 "duration_seconds = 900\n", 0o644)
    env = env_for(sim, AWS_SHARED_CREDENTIALS_FILE=cred,
                  AWS_CONFIG_FILE=conf, AWS_PROFILE="ops")
    err = run_repeat(sim, env)
    assert (f"assume-role {ROLE} via profile ops (source profile base)"
            in err)
    sts = sim.requests("AssumeRole")
    # Signed by the source profile's keys, with the profile's settings.
    assert all(e["access_key"] == sim.ready["access_key"] for e in sts)
    assert sts[0]["params"]["ExternalId"] == "ext-42"
    assert sts[0]["params"]["RoleSessionName"] == "fod-ops"
    assert sts[0]["params"]["DurationSeconds"] == "900"
    # Refreshed before expiry: several sessions, no EC2 call refused.
    assert len(sts) >= 2
    log = ec2_log(sim)
    assert all(e["status"] == 200 for e in log)
    assert all(e["credential_kind"] == "assumed-role" for e in log)
    issued = {i["access_key"] for i in sim.control("GET", "/sts")["issued"]}
    assert {e["access_key"] for e in log} <= issued
    assert len({e["access_key"] for e in log}) >= 2
    assert "refreshed assume-role" in err
    no_secret(sim, err)


def test_assume_role_refused_by_sts_is_a_clear_error(sim):
    sim.control("POST", "/sts", {"external_id": "the-right-one"})
    cred = static_profile(sim)
    conf = write(sim, "config", f"[default]\nrole_arn = {ROLE}\n"
                 "source_profile = base\nexternal_id = a-wrong-one\n")
    env = env_for(sim, AWS_SHARED_CREDENTIALS_FILE=cred,
                  AWS_CONFIG_FILE=conf)
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    msg = out[0]["message"]
    assert out[0]["status"] == "no-credentials", out
    assert "AccessDenied" in msg and ROLE in msg
    assert "via profile default (source profile base)" in msg
    assert ec2_log(sim) == []
    no_secret(sim, err + json.dumps(out))


@pytest.mark.parametrize("text,want", [
    (f"role_arn = {ROLE}\n", "needs source_profile or credential_source"),
    (f"role_arn = {ROLE}\nsource_profile = base\ncredential_source = "
     "Environment\n", "both source_profile and credential_source"),
    (f"role_arn = {ROLE}\ncredential_source = Ec2Metadata\n",
     "must be Environment, Ec2InstanceMetadata or EcsContainer"),
    (f"role_arn = {ROLE}\nsource_profile = base\nduration_seconds = 60\n",
     "duration_seconds = 60"),
    (f"role_arn = {ROLE}\nsource_profile = nowhere\n",
     "profile 'nowhere': no credentials"),
])
def test_bad_role_settings_are_named(sim, text, want):
    cred = static_profile(sim)
    conf = write(sim, "config", "[default]\n" + text)
    env = env_for(sim, AWS_SHARED_CREDENTIALS_FILE=cred,
                  AWS_CONFIG_FILE=conf)
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    assert want in out[0]["message"], out
    assert sim.requests() == []


def test_assume_role_credential_source_environment(sim):
    # A profile named in the configuration is explicit: the keys in the
    # environment do not answer for it, they are its role's source.
    conf = write(sim, "config", f"[profile ops]\nrole_arn = {ROLE}\n"
                 "credential_source = Environment\n")
    env = env_for(sim, AWS_CONFIG_FILE=conf,
                  AWS_ACCESS_KEY_ID=sim.ready["access_key"],
                  AWS_SECRET_ACCESS_KEY=sim.ready["secret_key"])
    rc, out, err = ec2call(env, "--profile", "ops",
                           "DescribeAvailabilityZones")
    assert rc == 0, err
    assert "credential_source Environment" in err
    sts = sim.requests("AssumeRole")
    assert [e["access_key"] for e in sts] == [sim.ready["access_key"]]
    assert ec2_log(sim)[0]["credential_kind"] == "assumed-role"


def test_assume_role_credential_source_instance_metadata(sim):
    conf = write(sim, "config", f"[default]\nrole_arn = {ROLE}\n"
                 "credential_source = Ec2InstanceMetadata\n")
    env = env_for(sim, AWS_CONFIG_FILE=conf,
                  AWS_EC2_METADATA_SERVICE_ENDPOINT=sim.ready["imds"])
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    sts = sim.requests("AssumeRole")
    assert len(sts) == 1 and sts[0]["credential_kind"] == "role"
    assert ec2_log(sim)[0]["credential_kind"] == "assumed-role"
    no_secret(sim, err)


def test_web_identity_from_the_environment(sim):
    sim.control("POST", "/sts", {"lifetime": 6,
                                 "web_token": "eyJ.web-token.sig"})
    tok = write(sim, "token", "eyJ.web-token.sig\n")
    env = env_for(sim, AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ROLE_ARN=ROLE,
                  AWS_ROLE_SESSION_NAME="fod-web")
    err = run_repeat(sim, env)
    assert f"web identity {ROLE} with token file {tok}" in err
    sts = sim.requests("AssumeRoleWithWebIdentity")
    assert len(sts) >= 2
    assert sts[0]["params"]["RoleSessionName"] == "fod-web"
    # The token is a secret: not logged by us, nor kept in the sim's log.
    assert "WebIdentityToken" not in sts[0]["params"]
    assert "web-token" not in err
    log = ec2_log(sim)
    assert all(e["credential_kind"] == "web-identity" for e in log)
    assert len({e["access_key"] for e in log}) >= 2
    no_secret(sim, err)


def test_web_identity_refused_token(sim):
    sim.control("POST", "/sts", {"web_token": "the-real-one"})
    tok = write(sim, "token", "eyJ.stale-token\n")
    env = env_for(sim, AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ROLE_ARN=ROLE)
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    assert "InvalidIdentityToken" in out[0]["message"]
    assert "stale-token" not in err + json.dumps(out)
    env["AWS_ROLE_ARN"] = ""
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1 and "AWS_ROLE_ARN" in out[0]["message"]


def process_script(sim, body):
    return write(sim, "helper.py", "import json, os, sys, time\n" + body,
                 0o700)


def test_credential_process_is_run_again_before_expiry(sim):
    count = os.path.join(sim.workdir, "runs")
    helper = process_script(sim, f"""
with open({count!r}, "a") as f:
    f.write("x")
sys.stderr.write("debug: secret is {sim.ready['secret_key']}\\n")
print(json.dumps({{"Version": 1,
    "AccessKeyId": {sim.ready['access_key']!r},
    "SecretAccessKey": {sim.ready['secret_key']!r},
    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                time.gmtime(time.time() + 4))}}))
""")
    conf = write(sim, "config", "[profile ops]\ncredential_process = "
                 f"{PY} {helper} --profile 'ops x'\n")
    env = env_for(sim, AWS_CONFIG_FILE=conf, AWS_PROFILE="ops")
    err = run_repeat(sim, env)
    assert "credential_process of profile ops" in err
    with open(count) as f:
        assert len(f.read()) >= 2
    no_secret(sim, err)


@pytest.mark.parametrize("body,want", [
    ("sys.stderr.write('token IQoJec2sim-leak\\n'); sys.exit(3)\n",
     "exited with status 3 (its stderr is not logged"),
    ("print('{\"Version\": 1, \"AccessKeyId\": ')\n", "bad output: JSON"),
    ("print(json.dumps({'Version': 2, 'AccessKeyId': 'a', "
     "'SecretAccessKey': 'b'}))\n", "\"Version\" must be the number 1"),
    ("import subprocess\nsubprocess.call(['sleep', '600'])\n",
     "no answer within 2 s; killed it"),
])
def test_credential_process_failures_are_clear(sim, body, want):
    helper = process_script(sim, body)
    conf = write(sim, "config", f"[default]\ncredential_process = {PY} "
                 f"{helper}\n")
    env = env_for(sim, AWS_CONFIG_FILE=conf)
    rc, out, err = ec2call(env, "--process-timeout", "2",
                           "DescribeAvailabilityZones")
    assert rc == 1
    assert out[0]["status"] == "no-credentials", out
    assert want in out[0]["message"], out
    assert "credential_process of profile default" in out[0]["message"]
    assert "IQoJec2sim" not in err + json.dumps(out)
    assert sim.requests() == []


def test_credential_process_that_cannot_run(sim):
    conf = write(sim, "config", "[default]\ncredential_process = "
                 "/nonexistent/helper --x\n")
    rc, out, err = ec2call(env_for(sim, AWS_CONFIG_FILE=conf),
                           "DescribeAvailabilityZones")
    assert rc == 1
    assert "cannot run /nonexistent/helper" in out[0]["message"]


def test_container_relative_uri(sim):
    sim.control("POST", "/sts", {"lifetime": 6})
    env = env_for(sim, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/"
                  "credentials/0f1e2d")
    err = run_repeat(sim, env, 8, "--container-endpoint",
                     sim.ready["container"])
    assert "container " + sim.ready["container"] + "/v2/credentials/" \
        "0f1e2d" in err
    gets = sim.requests("ContainerCredentials")
    assert len(gets) >= 2
    log = ec2_log(sim)
    assert all(e["credential_kind"] == "container" for e in log)
    assert len({e["access_key"] for e in log}) >= 2
    no_secret(sim, err)


def test_container_full_uri_with_token_file(sim):
    sim.control("POST", "/sts", {"container_token": "eks-pod-token"})
    tok = write(sim, "pod-token", "eks-pod-token")
    url = sim.ready["container"] + "/v1/credentials"
    env = env_for(sim, AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
                  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=tok,
                  AWS_CONTAINER_AUTHORIZATION_TOKEN="ignored-token")
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    assert "with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in err
    assert "eks-pod-token" not in err
    assert ec2_log(sim)[0]["credential_kind"] == "container"
    # The agent refuses a wrong token: the status is in the error.
    write(sim, "pod-token", "stale")
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1 and "HTTP 401" in out[0]["message"]


def test_container_full_uri_host_is_checked(sim):
    env = env_for(sim, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://"
                  "creds.example.invalid/v1/credentials")
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    assert "the host must be loopback" in out[0]["message"]
    assert sim.requests() == []


# --- the daemon: credentials expiring in the middle of a failover -------

def test_assumed_role_expiring_during_a_failover(tmp_path):
    """failoverd on an assumed role whose sessions last 6 s (STS's
    minimum is 900; ec2sim shortens them), through a failover slowed to
    last several sessions: it completes, every EC2 call is signed with
    a live session (ec2sim refuses an expired one with RequestExpired),
    sessions are renewed from the loop, and no secret reaches the log."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                    "ec2sim"))
    from simfixture import Ec2Sim
    from conftest import OLD, assert_replaced, healthy, write_conf
    from fodtest import Daemon

    with Ec2Sim("basic", tmp_path / "sim") as sim:
        sim.sts_control(lifetime=6)
        sim.set_delays(pending=3.0, stopping=2.0, attach=2.0, detach=2.0)
        d = str(tmp_path)
        conf = write_conf(d, sim)
        cred = os.path.join(d, "credentials")
        with open(cred, "w") as f:
            f.write(f"[base]\naws_access_key_id = {sim.access_key}\n"
                    f"aws_secret_access_key = {sim.secret_key}\n")
        os.chmod(cred, 0o600)
        cfg = os.path.join(d, "config")
        with open(cfg, "w") as f:
            f.write(f"[default]\nrole_arn = {ROLE}\n"
                    "source_profile = base\n")
        env = {k: v for k, v in sim.env().items()
               if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        env.update({"AWS_SHARED_CREDENTIALS_FILE": cred,
                    "AWS_CONFIG_FILE": cfg, "HOME": d,
                    "AWS_ENDPOINT_URL_STS": sim.sts})
        with Daemon(conf, env=env) as dm:
            dm.sock = os.path.join(d, "control.sock")
            healthy(dm)
            dm.wait_for(r"aws credentials: using assume-role "
                        + ROLE.replace("/", ".") + " via profile default",
                        timeout=20)
            before = len(sim.requests("AssumeRole"))
            sim.instance_fault(OLD, "both")
            dm.wait_for(r"event=failover_completed", timeout=120)
            assert_replaced(sim)
            log = "\n".join(dm.lines)
        sts = sim.requests("AssumeRole")
        assert all(e["access_key"] == sim.access_key for e in sts)
        assert len(sts) - before >= 2, "no session renewed in the failover"
        ec2 = [e for e in sim.requests() if e["action"] != "AssumeRole"]
        assert ec2 and all(e["credential_kind"] == "assumed-role"
                           for e in ec2)
        codes = {e["code"] for e in ec2}
        assert not codes & {"RequestExpired", "AuthFailure",
                            "ExpiredToken"}, codes
        mutating = [e for e in ec2 if e["action"] in (
            "RunInstances", "StopInstances", "DetachVolume", "AttachVolume",
            "AssociateAddress")]
        # The failover's calls were signed by more than one session.
        assert len({e["access_key"] for e in mutating}) >= 2
        assert "refreshed assume-role" in log
        assert sim.secret_key not in log and "IQoJec2sim" not in log


def test_web_identity_and_self_sourced_role_from_the_config_file(sim):
    sim.control("POST", "/sts", {"web_token": "eyJ.profile-token"})
    tok = write(sim, "token", "eyJ.profile-token")
    conf = write(sim, "config",
                 f"[profile web]\nrole_arn = {ROLE}\n"
                 f"web_identity_token_file = {tok}\n"
                 f"role_session_name = from-profile\n\n"
                 f"[profile self]\nrole_arn = {ROLE}\nsource_profile = self"
                 f"\naws_access_key_id = {sim.ready['access_key']}\n"
                 f"aws_secret_access_key = {sim.ready['secret_key']}\n")
    env = env_for(sim, AWS_CONFIG_FILE=conf, AWS_PROFILE="web")
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    sts = sim.requests("AssumeRoleWithWebIdentity")
    assert [e["params"]["RoleSessionName"] for e in sts] == \
        ["from-profile"]
    # A profile that is its own source_profile signs with its own keys.
    env["AWS_PROFILE"] = "self"
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 0, err
    assert "(source profile self)" in err
    assert [e["access_key"] for e in sim.requests("AssumeRole")] == \
        [sim.ready["access_key"]]
    no_secret(sim, err)


def test_container_agent_that_hangs_is_an_error_in_bounded_time(sim):
    sim.control("POST", "/sts", {"container_fault": "hang"})
    env = env_for(sim, AWS_CONTAINER_CREDENTIALS_FULL_URI=sim.ready[
        "container"] + "/v1/credentials")
    rc, out, err = ec2call(env, "DescribeAvailabilityZones")
    assert rc == 1
    assert "container credentials GET" in out[0]["message"]
    assert "Timeout" in out[0]["message"] or "timed out" in \
        out[0]["message"], out
    assert ec2_log(sim) == []


def test_botocore_reads_the_sims_sts_and_ec2_refuses_stale_sessions(
        sim, monkeypatch):
    """botocore's own STS model parses ec2sim's replies (the shapes are
    AWS's), and EC2 calls signed with an issued session need its token
    and stop at its Expiration with AWS's RequestExpired."""
    import time
    import botocore.session
    from botocore.exceptions import ClientError
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.path.join(sim.workdir, "x"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE",
                       os.path.join(sim.workdir, "y"))
    monkeypatch.setenv("HOME", sim.workdir)
    sim.control("POST", "/sts", {"lifetime": 8, "web_token": "eyJ.tok"})
    s = botocore.session.get_session()
    region = sim.ready["region"]
    sts = s.create_client("sts", region_name=region,
                          endpoint_url=sim.ready["sts"],
                          aws_access_key_id=sim.ready["access_key"],
                          aws_secret_access_key=sim.ready["secret_key"])
    r = sts.assume_role(RoleArn=ROLE, RoleSessionName="boto",
                        DurationSeconds=900)
    c = r["Credentials"]
    assert r["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::123456789012:assumed-role/failoverd/boto"
    w = sts.assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="web", WebIdentityToken="eyJ.tok")
    assert w["Credentials"]["AccessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as e:
        sts.assume_role_with_web_identity(
            RoleArn=ROLE, RoleSessionName="web", WebIdentityToken="eyJ.no")
    assert e.value.response["Error"]["Code"] == "InvalidIdentityToken"

    def ec2(token):
        return s.create_client(
            "ec2", region_name=region, endpoint_url=sim.ready["endpoint"],
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=token)
    ec2(c["SessionToken"]).describe_availability_zones()
    with pytest.raises(ClientError) as e:
        ec2(None).describe_availability_zones()
    assert e.value.response["Error"]["Code"] == "AuthFailure"
    # Past its Expiration (by the sim's clock, which the reply gave).
    deadline = c["Expiration"].timestamp() + 1
    while time.time() < deadline:
        time.sleep(0.2)
    with pytest.raises(ClientError) as e:
        ec2(c["SessionToken"]).describe_availability_zones()
    assert e.value.response["Error"]["Code"] == "RequestExpired"
    # STS itself answers a call signed with the expired session so.
    old = s.create_client("sts", region_name=region,
                          endpoint_url=sim.ready["sts"],
                          aws_access_key_id=c["AccessKeyId"],
                          aws_secret_access_key=c["SecretAccessKey"],
                          aws_session_token=c["SessionToken"])
    with pytest.raises(ClientError) as e:
        old.assume_role(RoleArn=ROLE, RoleSessionName="again")
    assert e.value.response["Error"]["Code"] == "ExpiredToken"


def test_daemon_with_a_hung_credential_process_says_why_and_recovers(
        tmp_path):
    """failoverd whose credential_process hangs: each attempt is killed
    at credential_process_timeout, the aws_error event says so (never
    what the helper wrote on stderr), the probes go on; once the helper
    is fixed the daemon gets its credentials without a restart."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                    "ec2sim"))
    from simfixture import Ec2Sim
    from conftest import healthy, write_conf
    from fodtest import Daemon

    with Ec2Sim("basic", tmp_path / "sim") as sim:
        d = str(tmp_path)
        conf = write_conf(d, sim)
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("call_timeout = 10;", "call_timeout = 10; "
                                 "credential_process_timeout = 2;"))
        helper = os.path.join(d, "helper.py")
        with open(helper, "w") as f:
            f.write("import sys, time\nsys.stderr.write('IQoJec2sim-"
                    "leak\\n')\nsys.stderr.flush()\ntime.sleep(600)\n")
        cfg = os.path.join(d, "config")
        with open(cfg, "w") as f:
            f.write(f"[default]\ncredential_process = {PY} {helper}\n")
        env = {k: v for k, v in sim.env().items()
               if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        env.update({"AWS_CONFIG_FILE": cfg, "HOME": d,
                    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(d, "none")})
        with Daemon(conf, env=env) as dm:
            dm.sock = os.path.join(d, "control.sock")
            line = dm.wait_for(r"event=aws_error .*credential_process",
                               timeout=60)
            assert "no answer within 2 s; killed it" in line
            assert "of profile default" in line
            # The good helper, written whole then renamed in.
            tmp = helper + ".new"
            with open(tmp, "w") as f:
                f.write("import json\nprint(json.dumps({'Version': 1, "
                        f"'AccessKeyId': {sim.access_key!r}, "
                        f"'SecretAccessKey': {sim.secret_key!r}}}))\n")
            os.rename(tmp, helper)
            dm.wait_for(r"aws credentials: using credential_process",
                        timeout=60)
            dm.wait_for(r"EC2 answers again", timeout=60)
            healthy(dm)
            log = "\n".join(dm.lines)
        assert "IQoJec2sim" not in log and sim.secret_key not in log
