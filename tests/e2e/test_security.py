"""What keeps failoverd from letting anyone in (issue 9): files with the
wrong mode refused at start, secrets never in a log, TLS verified unless a
person turned it off (and the log says so), the control socket closed to
users outside its group with every mutating command logged with the
caller's uid, and every sandboxing exception of the unit explained.

The tests that need a second user (useradd, setpriv) run only as root and
skip with the reason otherwise."""
import grp
import json
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import loopguard  # noqa: E402
from conftest import write_conf  # noqa: E402
from fodtest import FAILOVERCTL, FAILOVERD, SRCDIR, Daemon, ctl  # noqa: E402
from servers import HttpServer, self_signed_cert  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

# Nothing in these tests may reach beyond loopback: every AWS endpoint
# points at a port nothing listens on unless a test gives ec2sim's.
NOWHERE = "http://127.0.0.1:9"

CTL_GROUP = "fodtest-ctl"
MEMBER = "fodtest-member"
OUTSIDER = "fodtest-outsider"


def isolated_env(**extra):
    """The environment without anything of the machine's AWS setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL_EC2": NOWHERE,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": NOWHERE,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_CONFIG_FILE": os.devnull})
    env.update(extra)
    return env


def simple_conf(d, probes=None, extra="", aws=""):
    """A one-service config; probes is the text inside `probes = (...)`."""
    if probes is None:
        probes = ('{ name = "http"; type = "http"; address = "127.0.0.1"; '
                  'port = 9; interval = 1.0; timeout = 0.5; }')
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    path = os.path.join(d, "failoverd.conf")
    with open(path, "w") as f:
        f.write(f"""state_dir = "{d}/state";
control_socket = "{d}/control.sock";
aws = {{ region = "us-east-1"; {aws} }};
{extra}
services = (
  {{
    name = "web";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    volumes = ( {{ id = "vol-0123456789abcdef0"; device = "/dev/sdf"; }} );
    launch = {{
      ami = "ami-0123456789abcdef0";
      instance_type = "t3.micro";
      subnet = "subnet-0123456789abcdef0";
    }};
    probes = ( {probes} );
  }}
);
""")
    os.chmod(path, 0o600)
    return path


def run_failoverd(conf, env, *args, timeout=30):
    """failoverd in the foreground until it exits by itself (a refusal)."""
    loopguard.check_file(env, conf)
    return subprocess.run([FAILOVERD, "-c", conf, "--log-stderr", *args],
                          capture_output=True, text=True, env=env,
                          timeout=timeout)


# --- files with the wrong mode ----------------------------------------------


def ssh_probe(key, known_hosts):
    return ('{ name = "shell"; type = "ssh"; address = "127.0.0.1"; '
            f'port = 9; user = "nobody"; key_file = "{key}"; '
            f'known_hosts = "{known_hosts}"; '
            'interval = 1.0; timeout = 0.5; }')


def write_secret(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return str(path)


CREDS = ("[default]\naws_access_key_id = AKIAFODTESTFILE00001\n"
         "aws_secret_access_key = fodtestFileSecretKey000000000000000001\n")


@pytest.mark.parametrize("what,mode,says", [
    ("config", 0o666, "lets others write it"),
    ("config", 0o602, "lets others write it"),
    ("ssh_key", 0o644, "lets others read it"),
    ("ssh_key", 0o604, "lets others read it"),
    # Whoever writes these decides which hosts are genuine, or runs code.
    ("known_hosts", 0o646, "lets others write it"),
    ("aws_ca_file", 0o666, "lets others write it"),
    ("alert_exec", 0o777, "lets others write it"),
    ("credentials", 0o640, "lets group or others read AWS secrets"),
    ("credentials", 0o644, "lets group or others read AWS secrets"),
    ("credentials", 0o622, "lets group or others change AWS secrets"),
    ("credentials", 0o602, "lets group or others change AWS secrets"),
    ("aws_config", 0o644, "lets group or others read AWS secrets"),
])
def test_refuses_to_start_with_a_file_others_may_read_or_write(
        tmp_path, what, mode, says):
    d = str(tmp_path)
    key = write_secret(tmp_path / "id_ed25519", "not really a key\n")
    kh = write_secret(tmp_path / "known_hosts", "")
    ca = write_secret(tmp_path / "ca.pem", "")
    hook = write_secret(tmp_path / "hook", "#!/bin/sh\nexit 0\n")
    os.chmod(hook, 0o700)
    creds = write_secret(tmp_path / "credentials", CREDS)
    awsconf = write_secret(tmp_path / "aws_config", CREDS)
    conf = simple_conf(d, probes=ssh_probe(key, kh),
                       aws=f'ca_file = "{ca}";',
                       extra=f'alerts = {{ exec = "{hook}"; }};')
    env = isolated_env(AWS_SHARED_CREDENTIALS_FILE=creds,
                       AWS_CONFIG_FILE=awsconf)
    files = {"config": conf, "ssh_key": key, "known_hosts": kh,
             "aws_ca_file": ca, "alert_exec": hook, "credentials": creds,
             "aws_config": awsconf}
    bad = files[what]
    os.chmod(bad, mode)
    want = "%s: mode %04o %s" % (bad, mode, says)

    # Both the daemon and `failoverd -t` (the unit's ExecStartPre).
    p = run_failoverd(conf, env)
    assert p.returncode == 1, p.stderr
    assert want in p.stderr, p.stderr
    assert "event=startup" not in p.stderr
    assert not os.path.exists(os.path.join(d, "control.sock"))
    p = run_failoverd(conf, env, "-t")
    assert p.returncode == 1
    assert want in p.stderr, p.stderr

    # The same file, private again: it starts.
    os.chmod(bad, 0o700 if what == "alert_exec" else 0o600)
    with Daemon(conf, env=env) as dmn:
        dmn.wait_for(r"event=startup")
        dmn.wait_for(r"event=config_loaded")


def test_refuses_to_start_with_an_included_file_others_may_write(
        tmp_path):
    d = str(tmp_path)
    conf = simple_conf(d)
    # The services move to a file the main one @includes.
    text = open(conf).read()
    head, services = text.split("services = (", 1)
    inc = tmp_path / "services.conf"
    inc.write_text("services = (" + services)
    with open(conf, "w") as f:
        f.write(head + '@include "services.conf"\n')
    os.chmod(inc, 0o666)
    p = run_failoverd(conf, isolated_env())
    assert p.returncode == 1, p.stderr
    assert "%s: mode 0666 lets others write it" % inc in p.stderr, p.stderr
    os.chmod(inc, 0o644)
    with Daemon(conf, env=isolated_env()) as dmn:
        dmn.wait_for(r"event=config_loaded")


def test_a_public_aws_config_without_keys_is_fine(tmp_path):
    # ~/.aws/config usually holds only a region: nothing secret in it.
    awsconf = tmp_path / "aws_config"
    awsconf.write_text("[default]\nregion = us-east-1\n")
    os.chmod(awsconf, 0o644)
    conf = simple_conf(str(tmp_path))
    with Daemon(conf, env=isolated_env(AWS_CONFIG_FILE=str(awsconf))) as d:
        d.wait_for(r"event=startup")


# --- secrets never logged ---------------------------------------------------


def sim_conf(d, sim, ca_file=None):
    """failoverd.conf for ec2sim's basic scenario, debug on; its probes
    are the shared builder's, roomy enough for a busy machine (these
    tests are about secrets and TLS, not probe timing)."""
    path = write_conf(d, sim, top={"aws": {
        "calls_per_second": 100, "burst": 100, "call_timeout": 10,
        "ca_file": ca_file}}, launch={"iam_instance_profile": None,
                                      "tags": None})
    os.chmod(path, 0o600)
    return path


def sim_env(sim, source):
    """ec2sim's endpoints, with credentials from one source only."""
    env = isolated_env(**sim.env())
    if source == "env":
        return env
    del env["AWS_ACCESS_KEY_ID"]
    del env["AWS_SECRET_ACCESS_KEY"]
    if source in ("file", "assume-role"):
        env["AWS_SHARED_CREDENTIALS_FILE"] = write_secret(
            os.path.join(sim.workdir, "..", "credentials"),
            "[%s]\n" % ("default" if source == "file" else "base") +
            f"aws_access_key_id = {sim.access_key}\n"
            f"aws_secret_access_key = {sim.secret_key}\n")
    # The sources that hand out sessions: short ones, refreshed often.
    sim.sts_control(lifetime=8, web_token="eyJ.security-test-token",
                    container_token="container-auth-secret")
    cfg = os.path.join(sim.workdir, "..", "aws-config")
    role = "arn:aws:iam::123456789012:role/failoverd"
    env["AWS_ENDPOINT_URL_STS"] = sim.sts
    if source == "assume-role":
        env["AWS_CONFIG_FILE"] = write_secret(
            cfg, f"[default]\nrole_arn = {role}\nsource_profile = base\n")
    elif source == "web-identity":
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = write_secret(
            os.path.join(sim.workdir, "..", "token"),
            "eyJ.security-test-token")
        env["AWS_ROLE_ARN"] = role
    elif source == "process":
        helper = write_secret(os.path.join(sim.workdir, "..", "helper"),
                              "import json, sys\n"
                              f"sys.stderr.write({sim.secret_key!r})\n"
                              "print(json.dumps({'Version': 1, "
                              f"'AccessKeyId': {sim.access_key!r}, "
                              f"'SecretAccessKey': {sim.secret_key!r}}}))"
                              "\n")
        env["AWS_CONFIG_FILE"] = write_secret(
            cfg, f"[default]\ncredential_process = /usr/bin/python3 "
            f"{helper}\n")
    elif source == "container":
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = \
            sim.container + "/v1/credentials"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "container-auth-secret"
    return env


# The request log's credential_kind of what each source signs with.
KINDS = {"env": "static", "file": "static", "imds": "role",
         "process": "static", "assume-role": "assumed-role",
         "web-identity": "web-identity", "container": "container"}


def imds_role_credentials(sim):
    """What the instance role hands out now (as failoverd got it)."""
    req = urllib.request.Request(
        sim.imds + "/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(req, timeout=5) as r:
        token = r.read().decode()
    req = urllib.request.Request(
        f"{sim.imds}/latest/meta-data/iam/security-credentials/{sim.role}",
        headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def everything_under(path):
    out = []
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out.append((os.path.join(root, name), f.read()))
    return out


def signed_calls(sim, kind):
    return [r for r in sim.requests()
            if r.get("status") == 200 and r.get("credential_kind") == kind]


@pytest.mark.parametrize("source", list(KINDS))
def test_secret_key_and_session_token_never_reach_a_log(tmp_path, source):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        conf = sim_conf(str(tmp_path), sim)
        kind = KINDS[source]
        with Daemon(conf, env=sim_env(sim, source), args=("-d",)) as d:
            d.wait_for(r"service web: healthy", timeout=30)
            sim.wait(lambda: signed_calls(sim, kind), timeout=30,
                     what="a signed call")
            if source == "env":
                # A whole failover: every action, every step's log.
                sim.instance_fault(BASIC["instance"], "both")
                d.wait_for(r"event=failover_completed", timeout=90)
            else:
                # A few rounds of the refresh calls.
                n = len(signed_calls(sim, kind))
                sim.wait(lambda: len(signed_calls(sim, kind)) >= n + 3,
                         timeout=60, what="more signed calls")
        secrets = {"secret key": sim.secret_key}
        if source == "imds":
            role = imds_role_credentials(sim)
            secrets = {"role secret key": role["SecretAccessKey"],
                       "session token": role["Token"]}
            assert all(r["access_key"] == role["AccessKeyId"]
                       for r in signed_calls(sim, kind))
        issued = sim._call("GET", "/sts")["issued"]
        if kind in ("assumed-role", "web-identity", "container"):
            assert issued, "nothing issued"
            for i, c in enumerate(issued):
                secrets[f"issued secret key {i}"] = c["secret_key"]
                secrets[f"issued session token {i}"] = c["token"]
        secrets["web identity token"] = "eyJ.security-test-token"
        secrets["container authorization"] = "container-auth-secret"
        log = "\n".join(d.lines)
        assert any("debug:" in l for l in d.lines), "debug logging is off"
        for what, secret in secrets.items():
            assert secret not in log, f"the {what} is in the log"
            for path, data in everything_under(tmp_path / "state"):
                assert secret.encode() not in data, \
                    f"the {what} is in {path}"


# --- TLS ---------------------------------------------------------------------


@pytest.mark.parametrize("with_ca", [False, True])
def test_aws_api_over_tls_is_verified_against_the_ca(tmp_path, with_ca):
    with Ec2Sim("basic", tmp_path / "sim", tls=True) as sim:
        assert sim.endpoint.startswith("https://")
        conf = sim_conf(str(tmp_path), sim,
                        ca_file=sim.ca_file if with_ca else None)
        env = sim_env(sim, "env")
        env.pop("AWS_CA_BUNDLE", None)
        with Daemon(conf, env=env) as d:
            if with_ca:
                sim.wait(lambda: signed_calls(sim, "static"), timeout=30,
                         what="a call through TLS")
                return
            line = d.wait_for(r"event=aws_error", timeout=30)
            assert "SSL certificate problem" in line, line
            # Not one request got past the handshake.
            assert sim.requests() == []


def test_probe_tls_verification_is_on_unless_turned_off_and_logged(
        tmp_path):
    cert, key = self_signed_cert(str(tmp_path), "probe.test")
    ip = "127.46.%d.2" % random.randint(1, 250)
    srv = HttpServer(ip, 8443, {"/ok": (200, "secure\n")},
                     certfile=cert, keyfile=key)
    try:
        # A TLS handshake with the test's own server thread takes more
        # than 0.4 s on a busy machine; a check that times out first
        # would be down for the wrong reason (timeout_in=connect).
        common = ('type = "http"; scheme = "https"; host = "probe.test"; '
                  f'address = "{ip}"; port = 8443; path = "/ok"; '
                  'interval = 2.0; timeout = 1.8; fall = 1; rise = 1;')
        probes = ", ".join([
            '{ name = "strict"; %s }' % common,
            '{ name = "with-ca"; ca_file = "%s"; %s }' % (cert, common),
            '{ name = "trusting"; tls_verify = false; %s }' % common])
        conf = simple_conf(str(tmp_path), probes=probes)
        with Daemon(conf, env=isolated_env()) as d:
            warn = d.wait_for(r"probe trusting: tls_verify is off")
            assert "warning" in warn
            # A certificate no CA vouches for fails the default probe:
            # its checks end in "tls". (Its probe_down may name another
            # reason: a first check that timed out on a busy machine.)
            sock = os.path.join(str(tmp_path), "control.sock")
            d.wait_for(r"event=probe_down.*probe=strict")
            deadline = time.monotonic() + 60
            while True:
                st = json.loads(ctl(sock, "status", "--json").stdout)
                strict = [p for s in st["services"] for p in s["probes"]
                          if p["name"] == "strict"][0]
                if strict["reason"] == "tls":
                    break
                assert time.monotonic() < deadline, strict
                d.drain(0.5)
            # ...passes with its CA, or with verification off.
            d.wait_for(r"probe web/with-ca: up")
            d.wait_for(r"probe web/trusting: up")
            assert not any("tls_verify is off" in l and
                           ("strict" in l or "with-ca" in l)
                           for l in d.lines)
    finally:
        srv.close()


# --- the control socket -----------------------------------------------------


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates test users and runs failoverctl "
                    "as them (useradd, setpriv)")
    for tool in ("useradd", "groupadd", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def ensure_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)
        return grp.getgrnam(name).gr_gid


def ensure_user(name, groups=()):
    try:
        pwd.getpwnam(name)
    except KeyError:
        args = ["useradd", "--system", "--no-create-home", "--shell",
                "/usr/sbin/nologin"]
        if groups:
            args += ["--groups", ",".join(groups)]
        subprocess.run(args + [name], check=True)
    if groups:
        subprocess.run(["usermod", "--append", "--groups", ",".join(groups),
                        name], check=True)
    return pwd.getpwnam(name).pw_uid


@pytest.fixture
def users():
    need_root()
    gid = ensure_group(CTL_GROUP)
    return {"gid": gid, "member": ensure_user(MEMBER, [CTL_GROUP]),
            "outsider": ensure_user(OUTSIDER)}


@pytest.fixture
def open_dir():
    """A directory every user may traverse (pytest's tmp_path is 0700,
    which would refuse the outsider for the wrong reason)."""
    d = tempfile.mkdtemp(prefix="fodsec-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ctl_as(user, ctlbin, sock, *args):
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
         ctlbin, "-s", sock, *args],
        capture_output=True, text=True, timeout=30)


def test_control_socket_is_0660_in_its_group_and_closed_to_others(
        users, open_dir):
    conf = simple_conf(open_dir, extra=f'control_group = "{CTL_GROUP}";')
    sock = os.path.join(open_dir, "control.sock")
    # A copy every user may run (the build tree may not be theirs).
    ctlbin = os.path.join(open_dir, "failoverctl")
    shutil.copy(FAILOVERCTL, ctlbin)
    os.chmod(ctlbin, 0o755)
    with Daemon(conf, env=isolated_env()) as d:
        d.wait_for(r"event=config_loaded")
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == users["gid"]

        p = ctl_as(OUTSIDER, ctlbin, sock, "status")
        assert p.returncode == 3, p.stdout + p.stderr
        assert "Permission denied" in p.stderr, p.stderr
        # The kernel refused it: the daemon never saw a client.
        assert not any(f"uid={users['outsider']}" in l for l in d.lines)

        p = ctl_as(MEMBER, ctlbin, sock, "status")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "web" in p.stdout


def test_every_mutating_command_is_logged_with_the_callers_uid(
        users, open_dir):
    conf = simple_conf(open_dir, extra=f'control_group = "{CTL_GROUP}";')
    sock = os.path.join(open_dir, "control.sock")
    ctlbin = os.path.join(open_dir, "failoverctl")
    shutil.copy(FAILOVERCTL, ctlbin)
    os.chmod(ctlbin, 0o755)
    uid = users["member"]
    with Daemon(conf, env=isolated_env()) as d:
        d.wait_for(r"event=config_loaded")
        for args in (["pause", "web"], ["resume", "web"], ["reload"]):
            mark = len(d.lines)
            p = ctl_as(MEMBER, ctlbin, sock, *args)
            assert p.returncode == 0, p.stdout + p.stderr
            line = d.wait_for(r"event=control_command.*command=%s"
                              % args[0], start=mark)
            assert f"uid={uid}" in line, line
        # Reading is not logged as a command.
        mark = len(d.lines)
        ctl_as(MEMBER, ctlbin, sock, "status")
        assert ctl(sock, "ping").stdout == "pong\n"
        assert not any("event=control_command" in l and "status" in l
                       for l in d.lines[mark:])


# --- the systemd unit -------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_each_sandboxing_exception_of_the_unit_is_explained(tmp_path):
    unit_path = os.path.join(SRCDIR, "systemd", "failoverd.service.in")
    unit = open(unit_path).read()
    path = tmp_path / "failoverd.service"
    path.write_text(unit.replace("@FOD_SBINDIR@/failoverd", FAILOVERD)
                    .replace("@FOD_PATH_CONFIG@",
                             "/etc/failoverd/failoverd.conf"))
    p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--threshold=20", str(path)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    level = float(p.stdout.split("exposure level for failoverd.service:")[1]
                  .split()[0])
    assert level <= 2.0
    comments = "\n".join(l for l in unit.splitlines() if l.startswith("#"))
    missing = []
    for line in p.stdout.splitlines():
        if not line.startswith("\u2717"):
            continue
        # "✗ RestrictAddressFamilies=~AF_UNIX   Service may ..."
        setting = line[1:].split()[0].split("=")[0]
        if setting not in comments:
            missing.append(line.strip())
    assert not missing, "not explained in the unit:\n" + "\n".join(missing)
