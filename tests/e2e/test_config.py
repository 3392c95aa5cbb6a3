"""`failoverd -t`: what a person checking a config file sees.

A good file prints the one-screen summary and exits 0; a bad one exits 1
with every mistake on stderr as file:line: setting.path: what is wrong,
the file named exactly as the person gave it."""
import glob
import os
import re

import pytest

from conftest import check, on_this_machine  # noqa: E402
from fodtest import SRCDIR

EXAMPLE = os.path.join(SRCDIR, "conf", "failoverd.conf")
FIXTURES = os.path.join(SRCDIR, "tests", "data", "conf")

GOOD = """\
services = (
  {
    name = "shop";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    launch = { ami = "ami-0123456789abcdef0"; instance_type = "t3.micro"; };
    probes = (
      { name = "front"; type = "http"; address = "127.0.0.1"; port = 8080;
        interval = 1.0; timeout = 0.5; }
    );
  }
);
"""


def test_example_config_passes_and_prints_summary(tmp_path):
    wrap = on_this_machine(tmp_path, EXAMPLE)
    r = check(wrap)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "file %s" % wrap in out
    assert "service web" in out
    assert "eip eipalloc-0123456789abcdef0" in out
    assert "volume vol-0123456789abcdef0 at /dev/sdf" in out
    assert "launch ami-0123456789abcdef0 t3.small in " \
        "subnet-0123456789abcdef0" in out
    assert "probe site" in out and "http GET http://EIP/health" in out
    assert "probe shell" in out and "ssh ec2-user@EIP:22" in out
    assert "policy auto failover, down when all" in out
    assert EXAMPLE + ":" not in r.stderr


def test_summary_shows_the_probe_settings(tmp_path):
    conf = tmp_path / "shop.conf"
    conf.write_text(GOOD)
    r = check(on_this_machine(tmp_path, conf))
    assert r.returncode == 0, r.stderr
    assert "service shop" in r.stdout
    assert "probe front      http GET http://127.0.0.1:8080/, every 1s, " \
        "timeout 0.5s, fall 3, rise 2" in r.stdout


def test_broken_file_exits_1_with_file_line_and_path(tmp_path):
    conf = tmp_path / "failoverd.conf"
    conf.write_text(GOOD.replace("timeout = 0.5;", "timeout = 1;"))
    r = check(str(conf))
    assert r.returncode == 1
    assert ("%s:8: services.[0].probes.[0].timeout: must be less than "
            "interval (1.0)\n" % conf) in r.stderr
    assert "service shop" not in r.stdout


def test_every_mistake_is_listed(tmp_path):
    conf = tmp_path / "failoverd.conf"
    text = GOOD.replace('name = "shop";', 'name = "shop"; colour = "red";')
    text = text.replace("port = 8080;", "port = 0;")
    text = text.replace('"ami-0123456789abcdef0"', '"ami-xyz"')
    conf.write_text(text)
    r = check(str(conf))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith(str(conf))]
    assert errors == [
        "%s:3: services.[0].colour: unknown setting" % conf,
        '%s:5: services.[0].launch.ami: "ami-xyz" is not an AMI id (ami- '
        "followed by 8 or 17 hex digits)" % conf,
        "%s:7: services.[0].probes.[0].port: must be at least 1 (got 0)"
        % conf,
    ]


def test_syntax_error_exits_1_with_file_line(tmp_path):
    conf = tmp_path / "failoverd.conf"
    conf.write_text(GOOD.replace('name = "shop";', 'name = shop;'))
    r = check(str(conf))
    assert r.returncode == 1
    assert "%s:3: syntax error\n" % conf in r.stderr


def test_missing_config_file_is_named(tmp_path):
    path = str(tmp_path / "nope.conf")
    r = check(path)
    assert r.returncode == 1
    assert "%s: No such file or directory\n" % path in r.stderr


def test_file_is_named_as_given(tmp_path):
    (tmp_path / "failoverd.conf").write_text(
        GOOD.replace('"eipalloc-0123456789abcdef0"', '"eip-1"'))
    r = check("failoverd.conf", cwd=str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.startswith(
        'failoverd.conf:4: services.[0].eip_allocation_id: "eip-1" is not '
        "an Elastic IP allocation id")


def test_minimal_fixture_passes(tmp_path):
    r = check(on_this_machine(tmp_path,
                              os.path.join(FIXTURES, "minimal.conf")))
    assert r.returncode == 0, r.stderr


BROKEN = sorted(p for p in glob.glob(os.path.join(FIXTURES, "*.conf"))
                if os.path.basename(p) != "minimal.conf")


@pytest.mark.parametrize("path", BROKEN, ids=os.path.basename)
def test_every_broken_fixture_is_rejected_with_its_place(path):
    r = check(path)
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first.startswith(path + ":"), first
    line = first[len(path) + 1:].split(":", 1)[0]
    assert line.isdigit() and int(line) > 1, first


def schema_names():
    """Every setting name in conf.c's schema tables."""
    src = open(os.path.join(SRCDIR, "src", "conf.c")).read()
    names = set(re.findall(r'\.name = "([a-z_]+)"', src))
    assert len(names) > 60
    return sorted(names)


def test_man_page_documents_every_setting():
    man = open(os.path.join(SRCDIR, "man", "failoverd.conf.5")).read()
    documented = set(re.findall(r"^\.BR? ([a-z_]+)", man, re.M))
    missing = [n for n in schema_names() if n not in documented]
    assert missing == []


def test_example_shows_every_setting():
    text = open(EXAMPLE).read()
    shown = set(re.findall(r"(?:^\s*#?\s*|[{;]\s*)([a-z_]+) = ", text,
                           re.M))
    missing = [n for n in schema_names() if n not in shown]
    assert missing == []


# The corpus of bad configurations (issue 13): every file under
# tests/data/conf/bad is refused by -t with exactly the errors in its
# .err sidecar (FILE is the file's path, DIR its directory).
BAD = os.path.join(FIXTURES, "bad")
BAD_CORPUS = sorted(glob.glob(os.path.join(BAD, "*.conf")))


@pytest.mark.parametrize("path", BAD_CORPUS, ids=os.path.basename)
def test_bad_corpus_gives_its_exact_error(path):
    want = open(path[:-len(".conf")] + ".err").read()
    r = check(path)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines(True)
              if not l.startswith("failoverd: configuration ")]
    got = "".join(errors).replace(path, "FILE").replace(BAD, "DIR")
    assert got == want


def test_bad_corpus_is_not_empty():
    assert len(BAD_CORPUS) >= 20


# `-t` checks what start checks: ExecStartPre=failoverd -t must not pass
# what ExecStart then refuses.

def start_check(tmp_path, top):
    conf = tmp_path / "failoverd.conf"
    conf.write_text(top + GOOD)
    return check(str(conf)), str(conf)


def test_t_refuses_a_missing_state_dir(tmp_path):
    r, conf = start_check(tmp_path, 'state_dir = "%s/nope";\n'
                          'control_socket = "%s/c.sock";\n'
                          % (tmp_path, tmp_path))
    assert r.returncode == 1
    assert "state_dir %s/nope: No such file or directory\n" % tmp_path \
        in r.stderr
    assert "failoverd: cannot start with %s" % conf in r.stderr


def test_t_refuses_a_state_dir_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    r, _ = start_check(tmp_path, 'state_dir = "%s/afile";\n'
                       'control_socket = "%s/c.sock";\n'
                       % (tmp_path, tmp_path))
    assert r.returncode == 1
    assert "state_dir %s/afile: not a directory\n" % tmp_path in r.stderr


def test_t_refuses_a_control_socket_path_sun_path_cannot_hold(tmp_path):
    sock = "%s/%s/c.sock" % (tmp_path, "s" * 110)
    r, conf = start_check(tmp_path, 'state_dir = "%s";\n'
                          'control_socket = "%s";\n' % (tmp_path, sock))
    assert r.returncode == 1
    assert "%s:2: control_socket: is %d characters long; at most 107\n" \
        % (conf, len(sock)) in r.stderr


def test_t_refuses_a_control_socket_in_no_directory(tmp_path):
    r, _ = start_check(tmp_path, 'state_dir = "%s";\n'
                       'control_socket = "%s/nodir/c.sock";\n'
                       % (tmp_path, tmp_path))
    assert r.returncode == 1
    assert "control_socket %s/nodir/c.sock: directory %s/nodir: No such " \
        "file or directory" % (tmp_path, tmp_path) in r.stderr


def test_t_passes_what_start_accepts(tmp_path):
    r, _ = start_check(tmp_path, 'state_dir = "%s";\n'
                       'control_socket = "%s/c.sock";\n'
                       % (tmp_path, tmp_path))
    assert r.returncode == 0, r.stderr


def test_t_output_has_no_secrets(tmp_path):
    """-t's summary goes to the journal at every start (ExecStartPre)."""
    token = "Zq7Xw9Vu5Ts3Rq1Po8Nm6Lk4"
    conf = tmp_path / "failoverd.conf"
    conf.write_text(
        'state_dir = "%s";\ncontrol_socket = "%s/c.sock";\n'
        'aws = { endpoint = "https://ak:Secr3tKey@127.0.0.1:4566/"; };\n'
        'alerts = { webhook = "https://hooks.example.com/services/T0001/'
        'B0002/%s?sig=%s"; };\n' % (tmp_path, tmp_path, token, token)
        + GOOD.replace('port = 8080;',
                       'url = "http://admin:hunter2pw@127.0.0.1:8080/h'
                       '?key=%s";' % token))
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for secret in (token, "Secr3tKey", "hunter2pw", "admin:", "ak:"):
        assert secret not in out, out
    assert "endpoint https://***@127.0.0.1:4566/" in out
    assert "https://hooks.example.com/services/T0001/B0002/***?sig=***" \
        in out
    assert "GET http://***@127.0.0.1:8080/h?key=***" in out


def test_t_shows_the_cluster_and_never_its_key(tmp_path):
    """A cluster member's -t: who it is among whom, where etcd is, the
    quorum as a count; the client key by its path, never its contents."""
    secret = "-----BEGIN PRIVATE KEY-----Mc4Fq2Lk8Ds1"
    files = {}
    for name in ("ca.pem", "member.pem", "member-key.pem"):
        f = tmp_path / name
        f.write_text(secret + "\n")
        f.chmod(0o600)
        files[name] = str(f)
    # The host-key secret every member shares: 32 bytes, shown by path.
    hks = tmp_path / "host-key-secret"
    hks.write_bytes(b"HKS-Zq9Vd3Wr7Tn2Pb5Xc8Ym4Lf6Gh1J")
    hks.chmod(0o600)
    conf = tmp_path / "failoverd.conf"
    conf.write_text(
        'cluster = {\n  name = "b";\n  members = [ "a", "b", "c" ];\n'
        '  endpoints = [ "https://127.0.0.1:2379", '
        '"https://127.0.0.2:2379", "https://127.0.0.3:2379" ];\n'
        '  tls = { ca_file = "%s"; cert_file = "%s"; key_file = "%s"; };\n'
        '  host_key_secret = "%s";\n'
        '};\n' % (files["ca.pem"], files["member.pem"],
                   files["member-key.pem"], hks) + GOOD)
    r = check(on_this_machine(tmp_path, str(conf)))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "cluster member b of a, b, c" in out
    assert "etcd https://127.0.0.1:2379, https://127.0.0.2:2379, " \
        "https://127.0.0.3:2379, prefix /failoverd, lease_ttl 10s, " \
        "timeout 2s" in out
    assert "quorum 2 of 3 (majority)" in out
    assert "key %s" % files["member-key.pem"] in out
    assert secret not in out + r.stderr
    assert "host_key_secret %s" % hks in out
    assert "HKS-" not in out + r.stderr


def test_cluster_mistake_named_at_its_line(tmp_path):
    conf = tmp_path / "failoverd.conf"
    conf.write_text('cluster = {\n  name = "d";\n'
                    '  members = [ "a", "b", "c" ];\n'
                    '  endpoints = [ "http://127.0.0.1:2379" ];\n'
                    '  quorum = 4;\n};\n' + GOOD)
    r = check(str(conf))
    assert r.returncode == 1
    assert '%s:2: cluster.name: "d" is not one of members' % conf \
        in r.stderr
    assert "%s:5: cluster.quorum: 4 is more than the 3 members" % conf \
        in r.stderr

def test_ten_thousand_services_are_a_valid_configuration(tmp_path):
    """The bounds that keep a reload from stalling (group sizes, file
    size) must not refuse the largest configuration the benchmarks run:
    10,000 services of one probe each, a 3 MB file."""
    svc = ('{ name = "s%d"; eip_allocation_id = "eipalloc-%017x"; '
           'launch = { ami = "ami-0123456789abcdef0"; '
           'instance_type = "t3.micro"; }; probes = ( { name = "h"; '
           'type = "http"; address = "127.0.%d.%d"; port = 80; '
           'interval = 1.0; timeout = 0.5; } ); }')
    body = "services = (\n" + ",\n".join(
        svc % (i, i + 1, 1 + i // 250, 1 + i % 250)
        for i in range(10000)) + "\n);\n"
    path = tmp_path / "big.conf"
    path.write_text(body)
    r = check(on_this_machine(tmp_path, str(path)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "service s9999" in r.stdout
