"""The Debian package: debian/ builds a .deb that lintian accepts, and
that holds what `apt install ./failoverd_*.deb` users rely on: the
programs, the unit integrated the Debian way but not enabled, the
system user, the configuration as a conffile only the daemon's group
reads, the man pages and the bash completion.

The package is built once (dpkg-buildpackage -us -uc -b) in a copy of
the source tree, so that the tree is never dirtied, and inspected with
dpkg-deb. It is never installed on this machine. Installing it into a
fresh root with dpkg would need a Debian base system there (debootstrap:
minutes and the network, for each run), so the maintainer scripts are
checked as dpkg-deb shows them, what they run and in which order, and
the part that makes the user and its directories is run for real in an
empty root (systemd-sysusers and systemd-tmpfiles --root)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from fodtest import SRCDIR, sanitized_build  # noqa: E402

TOOLS = ("dpkg-buildpackage", "dpkg-deb", "lintian", "dh", "fakeroot")

pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS),
        reason="needs %s (scripts/lib.sh installs them)" % ", ".join(TOOLS)),
    # The package is built from the sources with Debian's flags, the same
    # whichever build tree runs ctest: once is enough.
    pytest.mark.skipif(sanitized_build(),
                       reason="the package does not depend on the ASan build"),
]


def source_files():
    """What the package is built from: the tracked files and the new
    ones not ignored, never a build tree."""
    p = subprocess.run(
        ["git", "-C", SRCDIR, "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("not a git checkout: %s" % p.stderr.strip())
    return [f for f in p.stdout.split("\0") if f]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    top = tmp_path_factory.mktemp("deb")
    src = top / "failoverd"
    for rel in source_files():
        from_ = os.path.join(SRCDIR, rel)
        if not os.path.lexists(from_):
            continue        # deleted in the work tree, not yet in git
        to = src / rel
        to.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(from_):
            os.symlink(os.readlink(from_), to)
        else:
            shutil.copy2(from_, to)
    env = dict(os.environ)
    # Two jobs, as everywhere on this machine; the unit tests run
    # (debian/rules: ctest -L unit), the end-to-end suite does not.
    env["DEB_BUILD_OPTIONS"] = "parallel=2"
    for var in ("MAKEFLAGS", "MFLAGS", "CFLAGS", "LDFLAGS"):
        env.pop(var, None)
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"],
                       cwd=src, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-4000:]
    debs = sorted(top.glob("failoverd_*.deb"))
    assert len(debs) == 1, debs
    deb = debs[0]
    changes = sorted(top.glob("failoverd_*.changes"))[0]
    root = top / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    ctrl = top / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    return {"top": top, "src": src, "deb": deb, "changes": changes,
            "root": root, "control": ctrl, "log": p.stdout}


def listing(deb):
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True,
                         capture_output=True, text=True).stdout
    files = {}
    for line in out.splitlines():
        f = line.split()
        # mode owner/group size date time path [-> target]
        files[f[5].lstrip(".")] = (f[0], f[1])
    return files


def test_the_unit_tests_ran_in_the_build_and_the_e2e_suite_did_not(built):
    assert re.search(r"ctest .*-L unit", built["log"]), built["log"][-3000:]
    assert re.search(r"100% tests passed, 0 tests failed out of \d+",
                     built["log"])
    e2e = re.findall(r"Start\s+\d+: (test_(?:daemon|failover|chaos|crash))\s",
                     built["log"])
    assert e2e == []


def test_lintian_is_clean(built):
    """Every tag lintian knows, pedantic ones included: a tag that
    remains is either fixed or overridden with its reason
    (debian/failoverd.lintian-overrides)."""
    p = subprocess.run(
        ["lintian", "--info", "--display-info", "--pedantic",
         "--fail-on", "error,warning,info,pedantic", str(built["changes"])],
        capture_output=True, text=True, timeout=480)
    tags = [l for l in p.stdout.splitlines()
            if re.match(r"[EWIPX]: ", l)]
    assert p.returncode == 0 and tags == [], p.stdout + p.stderr


def test_the_files_a_user_relies_on(built):
    files = listing(built["deb"])
    want = [
        "/usr/sbin/failoverd",
        "/usr/sbin/failoverctl",
        "/lib/systemd/system/failoverd.service",
        "/usr/lib/sysusers.d/failoverd.conf",
        "/usr/lib/tmpfiles.d/failoverd.conf",
        "/etc/failoverd/failoverd.conf",
        "/usr/share/man/man8/failoverd.8.gz",
        "/usr/share/man/man8/failoverctl.8.gz",
        "/usr/share/man/man5/failoverd.conf.5.gz",
        "/usr/share/bash-completion/completions/failoverctl",
        "/usr/share/doc/failoverd/README.Debian",
        "/usr/share/doc/failoverd/copyright",
    ]
    missing = [f for f in want if f not in files]
    assert missing == [], sorted(files)
    for f in ("/usr/sbin/failoverd", "/usr/sbin/failoverctl"):
        assert files[f] == ("-rwxr-xr-x", "root/root"), (f, files[f])
    # Nothing of the build's test world, nothing under /usr/local.
    stray = [f for f in files
             if f.startswith("/usr/local")
             or re.search(r"/(ec2call|etcdcall|bench_|test_|fuzz_)[^/]*$", f)]
    assert stray == []


def test_the_programs_use_the_paths_the_package_installs(built):
    root = built["root"]
    p = subprocess.run([str(root / "usr/sbin/failoverd"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "/etc/failoverd/failoverd.conf" in p.stdout
    assert "control_socket /run/failoverd/control.sock" in p.stdout
    assert "state_dir /var/lib/failoverd" in p.stdout
    unit = (root / "lib/systemd/system/failoverd.service").read_text()
    assert ("ExecStart=/usr/sbin/failoverd -c /etc/failoverd/failoverd.conf"
            in unit)
    assert "ExecStartPre=/usr/sbin/failoverd -t -c " in unit
    for line in ("User=failoverd", "StateDirectory=failoverd",
                 "RuntimeDirectory=failoverd", "WantedBy=multi-user.target"):
        assert line in unit.splitlines(), line
    # The man pages say the paths of this build.
    man = subprocess.run(
        ["zcat", str(root / "usr/share/man/man8/failoverd.8.gz")],
        capture_output=True, text=True, check=True).stdout
    assert "/etc/failoverd/failoverd.conf" in man
    assert "/usr/local" not in man


def test_the_configuration_is_a_conffile_from_the_example(built):
    conffiles = (built["control"] / "conffiles").read_text().split()
    assert conffiles == ["/etc/failoverd/failoverd.conf"]
    shipped = (built["root"] / "etc/failoverd/failoverd.conf").read_bytes()
    with open(os.path.join(SRCDIR, "conf/failoverd.conf"), "rb") as f:
        assert shipped == f.read()


def test_the_system_user_comes_from_the_projects_sysusers_file(built):
    shipped = (built["root"] / "usr/lib/sysusers.d/failoverd.conf")
    with open(os.path.join(SRCDIR, "systemd/failoverd.sysusers")) as f:
        assert shipped.read_text() == f.read()
    tmpfiles = (built["root"] / "usr/lib/tmpfiles.d/failoverd.conf")
    lines = [l.split() for l in tmpfiles.read_text().splitlines()
             if l and not l.startswith("#")]
    assert ["d", "/var/lib/failoverd", "0750", "failoverd", "failoverd",
            "-"] in lines
    assert ["d", "/run/failoverd", "0750", "failoverd", "failoverd",
            "-"] in lines


def test_in_a_fresh_root_the_user_and_its_dirs_are_made(built, tmp_path):
    """What postinst runs for the user and the directories, with dpkg's
    DPKG_ROOT: systemd-sysusers and systemd-tmpfiles on the package's
    own files, in an empty root (nothing of this machine is touched)."""
    postinst = (built["control"] / "postinst").read_text()
    assert ('systemd-sysusers ${DPKG_ROOT:+--root="$DPKG_ROOT"} '
            'failoverd.conf') in postinst
    assert ('systemd-tmpfiles ${DPKG_ROOT:+--root="$DPKG_ROOT"} --create '
            'failoverd.conf') in postinst
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(built["deb"]), str(root)],
                   check=True)
    (root / "etc").mkdir(exist_ok=True)
    for cmd in (["systemd-sysusers", "--root=%s" % root, "failoverd.conf"],
                ["systemd-tmpfiles", "--root=%s" % root, "--create",
                 "failoverd.conf"]):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (cmd, p.stderr)
    users = {l.split(":")[0]: l.split(":")
             for l in (root / "etc/passwd").read_text().splitlines()}
    groups = {l.split(":")[0]: l.split(":")
              for l in (root / "etc/group").read_text().splitlines()}
    user = users["failoverd"]
    assert int(user[2]) < 1000                  # a system user
    assert user[3] == groups["failoverd"][2]
    assert user[5] == "/var/lib/failoverd"
    assert user[6].endswith("nologin")
    # The unit runs as that user.
    unit = (root / "lib/systemd/system/failoverd.service").read_text()
    assert "User=failoverd" in unit.splitlines()
    for d in ("var/lib/failoverd", "run/failoverd"):
        st = os.stat(root / d)
        assert (st.st_uid, st.st_gid) == (int(user[2]), int(user[3])), d
        assert st.st_mode & 0o7777 == 0o750, (d, oct(st.st_mode))


def test_postinst_creates_the_user_then_the_dirs_and_does_not_enable(built):
    postinst = (built["control"] / "postinst").read_text()
    p = subprocess.run(["sh", "-n", str(built["control"] / "postinst")])
    assert p.returncode == 0
    sysusers = postinst.find("systemd-sysusers")
    tmpfiles = postinst.find("systemd-tmpfiles")
    override = postinst.find(
        "dpkg-statoverride --update --add root failoverd 0640")
    assert -1 < sysusers < tmpfiles, postinst
    # The group exists before the configuration is given to it.
    assert sysusers < override, postinst
    # dh_installsystemd --no-enable: the unit is registered (so that a
    # purge cleans up) and enabled only where the admin had enabled it.
    assert "deb-systemd-helper update-state 'failoverd.service'" in postinst
    # Enabled only if deb-systemd-helper already knows the unit (an
    # upgrade) and it was enabled: a fresh install has nothing to keep.
    assert re.search(
        r"if deb-systemd-helper debian-installed 'failoverd.service'; then"
        r"\n(?:\s*#[^\n]*\n|\s*deb-systemd-helper unmask [^\n]*\n|\s*\n)*"
        r"\s*if deb-systemd-helper --quiet was-enabled 'failoverd.service';"
        r" then\n(?:\s*#[^\n]*\n)*"
        r"\s*deb-systemd-helper enable 'failoverd.service'", postinst), postinst
    assert postinst.count("deb-systemd-helper enable") == 1, postinst
    # Started on install only if enabled (deb-systemd-invoke skips a
    # disabled unit), restarted on upgrade if running.
    assert re.search(r"deb-systemd-invoke \$_dh_action 'failoverd.service'",
                     postinst), postinst


def test_remove_stops_and_purge_cleans_up(built):
    ctrl = built["control"]
    prerm = (ctrl / "prerm").read_text()
    assert "deb-systemd-invoke stop 'failoverd.service'" in prerm
    postrm = (ctrl / "postrm").read_text()
    assert "deb-systemd-helper purge 'failoverd.service'" in postrm
    assert "dpkg-statoverride --remove /etc/failoverd/failoverd.conf" in postrm
    assert "rm -rf /var/lib/failoverd" in postrm
    for script in ("postinst", "prerm", "postrm"):
        p = subprocess.run(["sh", "-n", str(ctrl / script)])
        assert p.returncode == 0, script


def test_the_source_tree_stays_clean(built):
    p = subprocess.run(["git", "-C", SRCDIR, "status", "--porcelain",
                        "--ignored", "--", "debian", "obj-x86_64-linux-gnu"],
                       capture_output=True, text=True, check=True)
    assert p.stdout == ""
