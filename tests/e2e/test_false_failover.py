"""No false failover (issue 9): a failover stops production for a
minute and moves its data, so failoverd must never start one on bad
evidence. A watchdog cut off from every target (their addresses
blackholed) while EC2 reports them ok is isolated, not looking at dead
services; a target that fails one probe in two (fall=3) is flapping, not
down. Both end with zero RunInstances and zero StopInstances in
ec2sim's request log."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from conftest import (calls, events, healthy, start,  # noqa: E402
                      start_on, two_service_scenario, write_conf)
from servers import HttpServer, wait_listening  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

OLD = BASIC["instance"]
API = "i-0bbbbbbbbbbbbbbb1"
API_EIP = "eipalloc-0bbbbbbbbbbbbbbb1"


def no_failover_requests(sim):
    assert calls(sim, "RunInstances") == []
    assert calls(sim, "StopInstances") == []
    assert calls(sim, "DetachVolume") == []
    assert calls(sim, "AssociateAddress") == []


def failover_events(d, start=0):
    return [e for e, _ in events(d, start=start)
            if e.startswith("failover_") and e != "failover_held"]


def api_service(sim):
    return f"""{{
    name = "api";
    eip_allocation_id = "{API_EIP}";
    volumes = ( {{ id = "vol-0dbbbbbbbbbbbbbb1"; device = "/dev/sdf"; }} );
    launch = {{ ami = "{BASIC['image']}"; instance_type = "t3.micro";
               subnet = "{BASIC['subnets']['us-east-1a']}"; }};
    probes = (
      {{ name = "site"; type = "http"; port = {sim.http_port};
         path = "/health"; interval = 0.5; timeout = 0.4;
         fall = 2; rise = 2; }},
      {{ name = "shell"; type = "ssh"; port = {sim.ssh_port};
         user = "{sim.ssh_user}"; key_file = "{sim.ssh_key}";
         known_hosts = "{sim.known_hosts}";
         interval = 1.0; timeout = 0.9; fall = 2; rise = 2; }} );
    policy = {{ cooldown = 0; }};
  }}"""


def test_watchdog_cut_off_from_every_target_never_fails_over(tmp_path):
    scenario = two_service_scenario(tmp_path)
    with Ec2Sim(scenario, tmp_path / "sim") as sim:
        with start(tmp_path, sim, extra=[api_service(sim)]) as d:
            healthy(d, "web")
            healthy(d, "api")
            # This host's network breaks: every instance address and
            # every EIP accepts connections and then says nothing, while
            # EC2 sees both instances running with checks ok.
            n = len(d.lines)
            for iid in (OLD, API):
                sim.instance_fault(iid, "blackhole")
            line = d.wait_for(r"event=watchdog_isolated", timeout=30,
                              start=n)
            assert "instance ok, system ok" in line
            assert calls(sim, "DescribeInstanceStatus")
            # Many probe rounds more (fall=2 at 0.5s): still nothing.
            d.drain(6)
            assert failover_events(d, n) == []
            no_failover_requests(sim)
            st = sim.state()
            for iid in (OLD, API):
                assert st["instances"][iid]["state"] == "running"
            # The network comes back: both serve, never replaced.
            m = len(d.lines)
            for iid in (OLD, API):
                sim.instance_fault(iid, "none")
            for name in ("web", "api"):
                d.wait_for(r"event=service_recovered service=%s " % name,
                           timeout=20, start=m)
            assert failover_events(d, n) == []
            no_failover_requests(sim)
            for name in ("web", "api"):
                assert sim.address(EIPS[name])["instance"] == \
                    {"web": OLD, "api": API}[name]


EIPS = {"web": BASIC["eip"], "api": API_EIP}


def flapping_probe(ip, port):
    return f"""{{ name = "flappy"; type = "http"; address = "{ip}";
            port = {port}; path = "/health";
            interval = 0.3; timeout = 0.25; fall = 3; rise = 2; }}"""


def test_a_target_down_one_probe_in_two_never_reaches_down(tmp_path):
    with Ec2Sim("basic", tmp_path / "sim") as sim:
        # An address of the sim's /16 that nothing of the sim uses.
        ip = "%s.3.1" % sim.net
        answers = {"n": 0, "flap": False}
        lock = threading.Lock()

        def flap(_handler):
            with lock:
                if not answers["flap"]:
                    return 200, "ok\n"
                answers["n"] += 1
                odd = answers["n"] % 2
            return (200, "ok\n") if odd else (503, "busy\n")

        srv = HttpServer(ip, 0, {"/health": flap})
        port = srv.server_address[1]
        wait_listening(ip, port)
        conf = write_conf(str(tmp_path), sim, probes=("site",))
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("probes = ( ", "probes = ( %s, "
                                 % flapping_probe(ip, port), 1))
        try:
            with start_on(tmp_path, sim, conf) as d:
                healthy(d)
                # The target starts to flap: 30 probes, fifteen of them
                # failed, never three in a row.
                n = len(d.lines)
                with lock:
                    answers["flap"] = True
                sim.wait(lambda: answers["n"] >= 30, timeout=30,
                         what="30 flapping probes")
                d.drain(0.2)
                assert [x for x in d.lines[n:]
                        if "web/flappy: check status=503" in x]
                assert not [e for e, _ in events(d, start=n)
                            if e in ("service_down", "service_degraded",
                                     "watchdog_isolated")]
                assert failover_events(d) == []
            no_failover_requests(sim)
        finally:
            srv.close()
