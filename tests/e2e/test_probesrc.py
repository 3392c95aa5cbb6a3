"""The probes' source address (issue 15): probe_source_address and a
probe's own source_address.

Each daemon here probes the same instance in ec2sim from its own
loopback address; ec2sim's cut drops one of them (a test-world facility,
tests/ec2sim/README.md), as a watchdog cut off from an instance would
be. The instance's servers say which source they saw, so the tests
check where each probe really came from."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from conftest import (OLD, calls, events, healthy, manual,  # noqa: E402
                      start, start_on, write_conf)
from fodtest import ctl  # noqa: E402
from simfixture import Ec2Sim  # noqa: E402
from conftest import check, on_this_machine  # noqa: E402

A_SRC, B_SRC, B_SSH_SRC = "127.0.0.9", "127.0.0.10", "127.0.0.11"
# TEST-NET-1 (RFC 5737): no interface here holds it, so bind(2) fails
# with EADDRNOTAVAIL before any packet is sent.
NOT_HERE = "192.0.2.1"


def seen(sim, src):
    return sim.sources(OLD)["seen"].get(src, {})


def failover_calls(sim):
    return (calls(sim, "RunInstances") + calls(sim, "StopInstances")
            + calls(sim, "AssociateAddress"))


def test_a_cut_source_downs_only_the_daemon_probing_from_it(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        # Never failing over: both daemons watch the one instance, and
        # what is asserted is each one's verdict.
        a = start(a_dir, sim, top={"probe_source_address": A_SRC},
                  **manual())
        over = manual()
        over["shell"]["source_address"] = B_SSH_SRC
        b = start(b_dir, sim, top={"probe_source_address": B_SRC}, **over)
        with a, b:
            healthy(a, timeout=60)
            healthy(b, timeout=60)
            # Each probe left from its own address: the daemon-wide
            # one, or the probe's own for b's SSH probe.
            sim.wait(lambda: seen(sim, A_SRC).get("http", 0) > 0
                     and seen(sim, A_SRC).get("ssh", 0) > 0
                     and seen(sim, B_SRC).get("http", 0) > 0
                     and seen(sim, B_SSH_SRC).get("ssh", 0) > 0,
                     timeout=30, what="each source seen by the instance")
            assert "ssh" not in seen(sim, B_SRC)
            assert "http" not in seen(sim, B_SSH_SRC)

            na, nb = len(a.lines), len(b.lines)
            sim.cut(OLD, [A_SRC])
            a.wait_for(r"event=service_down service=web", timeout=60,
                       start=na)
            downs = {l.split("probe=")[1].split()[0]
                     for l in events(a, "probe_down", start=na)}
            assert downs == {"site", "shell"}, downs
            # Long enough for b to see it too had it been cut: fall 3 of
            # both probes once a second.
            b.drain(6)
            assert events(b, "probe_down", start=nb) == []
            assert events(b, "service_down", start=nb) == []
            assert seen(sim, A_SRC).get("http_cut", 0) > 0
            assert seen(sim, A_SRC).get("ssh_cut", 0) > 0

            sim.uncut(OLD)
            a.wait_for(r"event=service_recovered service=web", timeout=60,
                       start=na)
            assert events(b, "probe_down", start=nb) == []
        assert failover_calls(sim) == []


def test_a_source_not_on_this_host_is_the_watchdogs_fault(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        conf = write_conf(str(tmp_path), sim,
                          top={"probe_source_address": NOT_HERE})
        # -t says so and passes: the address may come up after the
        # daemon (failoverd.conf(5)).
        r = check(conf)
        assert r.returncode == 0, r.stderr
        assert ("warning: source address %s (services.[0] web, probe "
                "site): bind: Cannot assign requested address" % NOT_HERE
                ) in r.stderr
        assert "from %s" % NOT_HERE in r.stdout
        with start_on(tmp_path, sim, conf) as d:
            d.wait_for(r"event=watchdog_unhealthy .*source=probes .*"
                       r"bind %s: Cannot assign requested address"
                       % NOT_HERE.replace(".", r"\."), timeout=30)
            # Several intervals of both probes at fall 2: the old code
            # would have gone down and failed over by now.
            d.drain(6)
            evs = [ev for ev, _ in events(d)]
            assert "probe_down" not in evs
            assert "service_down" not in evs
            assert not [ev for ev in evs if ev.startswith("failover_")]
        assert failover_calls(sim) == []
        assert sim.instance(OLD)["state"] == "running"


def test_bad_source_addresses_are_refused_with_file_and_line(tmp_path):
    conf = tmp_path / "failoverd.conf"
    conf.write_text("""\
probe_source_address = "eth1";
services = (
  {
    name = "shop";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    launch = { ami = "ami-0123456789abcdef0"; instance_type = "t3.micro"; };
    probes = (
      { name = "front"; type = "http"; address = "127.0.0.1"; port = 8080;
        source_address = "0.0.0.0"; interval = 1.0; timeout = 0.5; },
      { name = "v6"; type = "http"; address = "127.0.0.1"; port = 8080;
        source_address = "::1"; interval = 1.0; timeout = 0.5; },
      { name = "name"; type = "ssh"; source_address = "mgmt.example.com";
        interval = 1.0; timeout = 0.5; }
    );
  }
);
""")
    r = check(str(conf))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith(str(conf))]
    assert errors == [
        '%s:1: probe_source_address: "eth1" is not an IPv4 or IPv6 '
        "address (names and interface names are not accepted: give the "
        "address the probes are to come from)" % conf,
        '%s:9: services.[0].probes.[0].source_address: "0.0.0.0" cannot '
        "be a source address: 0.0.0.0 is any address: leave the setting "
        "out to let the kernel pick" % conf,
        '%s:12: services.[0].probes.[2].source_address: '
        '"mgmt.example.com" is not an IPv4 or IPv6 address (names and '
        "interface names are not accepted: give the address the probes "
        "are to come from)" % conf,
        '%s:11: services.[0].probes.[1].source_address: "::1" is IPv6 '
        "and the probe's target (127.0.0.1) is IPv4" % conf,
    ]


def test_a_daemon_wide_source_of_the_other_family_is_refused(tmp_path):
    conf = tmp_path / "failoverd.conf"
    conf.write_text("""\
probe_source_address = "::1";
services = (
  {
    name = "shop";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    launch = { ami = "ami-0123456789abcdef0"; instance_type = "t3.micro"; };
    probes = (
      { name = "front"; type = "http"; port = 8080;
        interval = 1.0; timeout = 0.5; },
      { name = "api"; type = "http"; url = "http://[::1]:8080/health";
        interval = 1.0; timeout = 0.5; }
    );
  }
);
""")
    r = check(str(conf))
    assert r.returncode == 1
    # A url's host is only the Host header: the connection goes to the
    # Elastic IP all the same.
    for line, i in ((8, 0), (10, 1)):
        assert ('%s:%d: services.[0].probes.[%d]: probe_source_address '
                '"::1" is IPv6 and this probe\'s target (the Elastic IP) '
                "is IPv4: give the probe its own source_address\n"
                % (conf, line, i)) in r.stderr


def test_summary_shows_each_probes_source(tmp_path):
    conf = tmp_path / "shop.conf"
    conf.write_text("""\
probe_source_address = "127.0.0.9";
services = (
  {
    name = "shop";
    eip_allocation_id = "eipalloc-0123456789abcdef0";
    launch = { ami = "ami-0123456789abcdef0"; instance_type = "t3.micro"; };
    probes = (
      { name = "front"; type = "http"; address = "127.0.0.1"; port = 8080;
        interval = 1.0; timeout = 0.5; },
      { name = "back"; type = "http"; address = "127.0.0.1"; port = 8081;
        source_address = "127.0.0.10"; interval = 1.0; timeout = 0.5; }
    );
  }
);
""")
    r = check(on_this_machine(tmp_path, conf))
    assert r.returncode == 0, r.stderr
    assert "http GET http://127.0.0.1:8080/ from 127.0.0.9, every 1s" \
        in r.stdout
    assert "http GET http://127.0.0.1:8081/ from 127.0.0.10, every 1s" \
        in r.stdout
    assert "warning" not in r.stderr


def test_snapshot_hooks_leave_from_their_probes_source(tmp_path):
    """The hooks run over SSH with the hook probe's settings: the
    command sees (in sshd's SSH_CLIENT) the probe's source address."""
    seen_by = tmp_path / "ssh_client"
    hooks = (f'pre_command = "echo $SSH_CLIENT > {seen_by}"; '
             'post_command = "true"; '
             f'hook_timeout = 10; hook_probe = "shell";')
    over = manual(hooks)
    over["shell"]["source_address"] = B_SSH_SRC
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        with start(tmp_path, sim, top={"probe_source_address": A_SRC},
                   **over) as d:
            d.wait_for(r"event=preflight_(passed|failed)", timeout=30)
            ctl(d.sock, "snapshot", "web")
            d.wait_for(r"event=snapshot_taken", timeout=60)
    assert seen_by.read_text().split()[0] == B_SSH_SRC
