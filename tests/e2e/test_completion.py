"""failoverctl's bash completion (completion/failoverctl), run by bash
itself: sourced, its function called with COMP_WORDS as bash sets them,
COMPREPLY read back. Services come from a real running daemon."""
import os
import shlex
import shutil
import subprocess

import pytest

from fodtest import FAILOVERCTL, SRCDIR, Daemon

COMPLETION = os.path.join(SRCDIR, "completion", "failoverctl")

SERVICE = """\
  {{ name = "{name}"; eip_allocation_id = "eipalloc-0123456789abcdef{n}";
     launch = {{ ami = "ami-0123456789abcdef0"; instance_type = "t3.micro";
                 subnet = "subnet-0123456789abcdef0"; }};
     probes = ( {{ name = "http"; type = "http"; address = "127.0.0.1";
                  port = 9; interval = 1.0; timeout = 0.5; }} ); }}"""

CONF = """\
state_dir = "{d}/state";
control_socket = "{d}/control.sock";
aws = {{ region = "us-east-1"; }};
services = (
{services}
);
"""

# Calls _failoverctl as bash's programmable completion does, once per
# line of words (a JSON array) on stdin, and prints COMPREPLY as JSON.
DRIVER = r"""
source "$1"
complete -p failoverctl >/dev/null || exit 9
while IFS= read -r line; do
	eval "COMP_WORDS=($line)"
	COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_failoverctl failoverctl "${COMP_WORDS[COMP_CWORD]}" \
	    "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\0' "${COMPREPLY[@]}"
	printf '\n'
done
"""


def complete(*lines, env=None):
    """Each line is the words typed so far, the last one being
    completed ("" for a fresh word); the first word is the program."""
    inp = "".join(" ".join(shlex.quote(w) for w in words) + "\n"
                  for words in lines)
    full_env = dict(os.environ)
    full_env.pop("FAILOVERD_SOCKET", None)
    full_env.update(env or {})
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER,
                        "driver", COMPLETION],
                       input=inp, capture_output=True, text=True,
                       timeout=120, env=full_env)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    out = p.stdout.split("\n")[:-1]
    assert len(out) == len(lines), p.stdout
    return [sorted(w for w in o.split("\0") if w) for o in out]


def usage_commands():
    """The commands failoverctl's usage lists, as a person reads it."""
    p = subprocess.run([FAILOVERCTL, "--help"], capture_output=True,
                       text=True, check=True)
    block = p.stdout.split("commands:\n")[1].split("options:\n")[0]
    return sorted({l.split()[0] for l in block.splitlines()
                   if l.startswith("  ") and not l.startswith("   ")})


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = tmp_path_factory.mktemp("compl")
    (d / "state").mkdir()
    services = ",\n".join(SERVICE.format(name=n, n=i)
                          for i, n in enumerate(("web", "db-main", "dbx")))
    conf = d / "failoverd.conf"
    conf.write_text(CONF.format(d=d, services=services))
    with Daemon(str(conf)) as dm:
        dm.wait_for(r"event=config_loaded")
        yield str(d / "control.sock")


def test_offers_every_command_failoverctl_accepts():
    [got] = complete([FAILOVERCTL, ""])
    assert got == usage_commands()
    for cmd in ("status", "history", "failover", "pause", "resume",
                "switch", "rollback", "snapshot", "snapshots",
                "preflight", "bake", "reload", "ping"):
        assert cmd in got


def test_events_and_follow_when_failoverctl_has_them():
    if "events" not in usage_commands():
        pytest.skip("this failoverctl has no events command yet")
    got = complete([FAILOVERCTL, "ev"], [FAILOVERCTL, "events", "--f"])
    assert got == [["events"], ["--follow"]]


def test_prefixes_and_global_options():
    got = complete([FAILOVERCTL, "sn"], [FAILOVERCTL, "--"],
                   [FAILOVERCTL, "-"])
    assert got[0] == ["snapshot", "snapshots"]
    assert got[1] == ["--json", "--socket", "--version", "--yes"]
    assert got[2] == ["--json", "--socket", "--version", "--yes",
                      "-V", "-j", "-s", "-y"]


def test_services_come_from_the_running_daemon(daemon):
    fc = FAILOVERCTL
    got = complete([fc, "-s", daemon, "status", ""],
                   [fc, "-s", daemon, "failover", "d"],
                   [fc, "--socket", daemon, "pause", "db"],
                   [fc, "-j", "-s", daemon, "history", ""],
                   [fc, "-s", daemon, "failover", "web", ""],
                   [fc, "-s", daemon, "reload", ""],
                   [fc, "-s", daemon, "switch", "--ami", "ami-1", "w"],
                   [fc, "-s", daemon, "failover", "--"])
    assert got == [["db-main", "dbx", "web"], ["db-main", "dbx"],
                   ["db-main", "dbx"], ["db-main", "dbx", "web"],
                   [], [], ["web"], []]


def test_the_socket_from_the_environment(daemon):
    got = complete([FAILOVERCTL, "resume", ""],
                   env={"FAILOVERD_SOCKET": daemon})
    assert got == [["db-main", "dbx", "web"]]


def test_no_daemon_no_services_and_no_noise(tmp_path):
    got = complete([FAILOVERCTL, "-s", str(tmp_path / "none.sock"),
                    "failover", ""])
    assert got == [[]]


def test_command_flags_and_their_values(daemon):
    fc = FAILOVERCTL
    got = complete([fc, "bake", "web", "--"],
                   [fc, "preflight", "web", "--r"],
                   [fc, "switch", "web", "--"],
                   [fc, "-s", daemon, "switch", "web", "--ami", ""],
                   [fc, "-s", daemon, "switch", "web", "--ami", "ami-1",
                    "--f"])
    # failoverctl's own options go before the command only (it stops
    # at the command), so after it only the command's flags are offered.
    assert got[0] == ["--no-reboot", "--use"]
    assert got[1] == ["--result"]
    assert got[2] == ["--ami", "--finish"]
    # An AMI id is not a service, nor a file.
    assert got[3] == []
    assert got[4] == ["--finish"]


def test_the_socket_option_completes_paths(tmp_path):
    (tmp_path / "control.sock").write_text("")
    got = complete([FAILOVERCTL, "-s", str(tmp_path / "cont")])
    assert got == [[str(tmp_path / "control.sock")]]


@pytest.mark.skipif(not os.path.exists(
    "/usr/share/bash-completion/bash_completion"),
    reason="bash-completion not installed")
def test_loaded_by_bash_completion_on_first_use(tmp_path):
    """Installed as share/bash-completion/completions/failoverctl, it is
    found by bash-completion's loader by the command's name."""
    share = tmp_path / "share" / "bash-completion" / "completions"
    share.mkdir(parents=True)
    shutil.copy(COMPLETION, share / "failoverctl")
    script = r"""
source /usr/share/bash-completion/bash_completion
__load_completion failoverctl || exit 7
complete -p failoverctl
"""
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ,
                                XDG_DATA_DIRS=str(tmp_path / "share")))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "-F _failoverctl failoverctl" in p.stdout
