"""SSH host keys of a replacement, end to end: failoverd against ec2sim,
whose console is EC2's (buffered output posted console_lag after a boot,
the latest only on Nitro types, the key block on an instance's first
boot only, never on an image with emit_keys_to_console: false) and
whose RunInstances reads user data as cloud-init does.

The ssh probe here has no known_hosts of its own: after a move it
trusts exactly the keys failoverd learnt, never the first key it sees,
so a failover that does not get the new instance's key right fails at
VERIFY."""
import base64
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
import conftest  # noqa: E402
from conftest import (EIP, assert_replaced, calls, ec2_client,  # noqa: E402
                      field, healthy, write_conf)
from fodtest import ctl  # noqa: E402
from simfixture import BASIC  # noqa: E402
import sim_cloudinit  # noqa: E402

OLD = BASIC["instance"]
AMI = BASIC["image"]


def start(tmp_path, sim, host_keys=None, instance_type="t3.micro",
          known_hosts=None, user_data=None, policy=None):
    """The demo service, its ssh probe without a known_hosts unless
    given one, its launch as asked."""
    user_data_file = None
    if user_data is not None:
        user_data_file = os.path.join(str(tmp_path), "user-data")
        with open(user_data_file, "wb") as f:
            f.write(user_data)
        os.chmod(user_data_file, 0o600)
    return conftest.start(tmp_path, sim, policy=policy,
                          shell={"known_hosts": known_hosts},
                          launch={"instance_type": instance_type,
                                  "host_keys": host_keys,
                                  "user_data_file": user_data_file})


def key_of(inst):
    """An instance's sshd host key, type and base64 (no comment)."""
    return " ".join(inst["host_key"].split()[:2])


def learned(tmp_path):
    with open(os.path.join(str(tmp_path), "state",
                           "web.learned_hosts")) as f:
        return f.read()


def consoles(sim, iid, since=0):
    return [r for r in sim.requests("GetConsoleOutput", since=since)
            if r["params"].get("InstanceId") == iid]


def last_seq(sim):
    reqs = sim.requests()
    return reqs[-1]["seq"] if reqs else 0


def user_data_of(sim):
    """The user data of the one RunInstances failoverd sent, raw."""
    runs = calls(sim, "RunInstances")
    assert len(runs) == 1
    return base64.b64decode(runs[0]["params"]["UserData"])


def no_keys_ever(sim):
    """New instances from the AMI never print their keys."""
    sim.image(AMI, emit_keys_to_console=False)


def keygen(tmp_path, name):
    path = os.path.join(str(tmp_path), name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    name, "-f", path], check=True, stdin=subprocess.DEVNULL)
    with open(path) as f, open(path + ".pub") as g:
        return f.read(), " ".join(g.read().split()[:2])


# --------------------------------------------------------------------------


def test_ec2sim_console_is_late_first_boot_only_and_latest_on_nitro(sim):
    """ec2sim: the buffered output waits console_lag; Latest is refused on
    Xen types; a restarted instance prints no key block."""
    from botocore.exceptions import ClientError
    c = ec2_client(sim)
    keys = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----\n(\S+ \S+)")
    for itype, nitro in (("t3.micro", True), ("t2.micro", False)):
        r = c.run_instances(ImageId=AMI, MinCount=1, MaxCount=1,
                            InstanceType=itype,
                            SubnetId=BASIC["subnets"]["us-east-1a"])
        iid = r["Instances"][0]["InstanceId"]
        sim.wait_instance_state(iid, "running", timeout=15)
        key = key_of(sim.instance(iid))
        # Buffered: nothing posted yet (console_lag is 180 s).
        assert "Output" not in c.get_console_output(InstanceId=iid)
        if nitro:
            out = c.get_console_output(InstanceId=iid, Latest=True)
            assert keys.search(out["Output"]).group(1) == key
        else:
            with pytest.raises(ClientError) as e:
                c.get_console_output(InstanceId=iid, Latest=True)
            assert e.value.response["Error"]["Code"] == \
                "UnsupportedOperation"
        sim.set_delays(console_lag=0.5)
        sim.wait(lambda: "Output" in c.get_console_output(InstanceId=iid),
                 timeout=10, what="buffered output posted")
        out = c.get_console_output(InstanceId=iid)["Output"]
        assert keys.search(out).group(1) == key
        # A second boot: cloud-init prints no keys any more.
        c.stop_instances(InstanceIds=[iid])
        sim.wait_instance_state(iid, "stopped", timeout=15)
        c.start_instances(InstanceIds=[iid])
        sim.wait_instance_state(iid, "running", timeout=15)
        assert sim.instance(iid)["boots"] == 2
        sim.wait(lambda: "Cloud-init v. 22.4.2 finished" in c.
                 get_console_output(InstanceId=iid).get("Output", ""),
                 timeout=10, what="second boot posted")
        out = c.get_console_output(InstanceId=iid)["Output"]
        assert "SSH HOST KEY" not in out
        sim.set_delays(console_lag=180)
    # Bad user data is refused as EC2 refuses it.
    with pytest.raises(ClientError) as e:
        c.run_instances(ImageId=AMI, MinCount=1, MaxCount=1,
                        UserData="x" * 16385 * 2)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_images_that_never_print_keys_fail_over_with_the_default(
        tmp_path, sim):
    no_keys_ever(sim)
    with start(tmp_path, sim) as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed", timeout=60)
        new = assert_replaced(sim)
        assert field(line, "new_instance") == new["id"]
        # The key the instance's sshd shows is the one failoverd gave it
        # in cloud-init's ssh_keys, trusted before it booted ...
        assert key_of(new) in learned(tmp_path)
        cfg = sim_cloudinit.cloud_config(user_data_of(sim))
        assert cfg["ssh_keys"]["ed25519_public"].startswith(
            key_of(new))
        assert "PRIVATE KEY" in cfg["ssh_keys"]["ed25519_private"]
        # ... so no console was read for it, and no secret was logged.
        assert consoles(sim, new["id"]) == []
        assert "gave it in its user data" in "\n".join(d.lines)
        assert not [x for x in d.lines if "PRIVATE KEY" in x]
        # The probe trusts it: healthy through the EIP after the move.
        healthy(d, timeout=30)


def test_user_data_file_goes_with_the_key_as_a_mime_multipart(
        tmp_path, sim):
    no_keys_ever(sim)
    # The user's own cloud-config names another host key: failoverd's
    # part comes last and cloud-init's merge keeps it.
    _, theirs = keygen(tmp_path, "theirs")
    mine = (b"#cloud-config\nssh_keys:\n  ed25519_public: " +
            theirs.encode() + b"\nruncmd:\n  - [touch, /tmp/ok]\n")
    with start(tmp_path, sim, user_data=mine) as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        d.wait_for(r"event=failover_completed", timeout=60)
        new = assert_replaced(sim)
        raw = user_data_of(sim)
        assert b"MIME-Version: 1.0" in raw[:4096]
        parts = sim_cloudinit.cloud_config_parts(raw)
        assert len(parts) == 2 and parts[0] == mine
        cfg = sim_cloudinit.cloud_config(raw)
        assert cfg["runcmd"] == [["touch", "/tmp/ok"]]
        assert cfg["ssh_keys"]["ed25519_public"].startswith(
            key_of(new))
        assert key_of(new) != theirs
        healthy(d, timeout=30)


def test_restart_in_place_does_not_wait_for_console_keys(tmp_path, sim):
    with start(tmp_path, sim) as d:
        healthy(d)
        assert key_of(sim.instance(OLD)) in learned(tmp_path)
        sim.fault(kind="error", action="RunInstances",
                  code="InsufficientInstanceCapacity",
                  message="We currently do not have sufficient t3.micro "
                  "capacity in the Availability Zone you requested.",
                  count=None)
        sim.instance_fault(OLD, "both")
        sim.wait_instance_state(OLD, "stopped", timeout=30)
        sim.instance_fault(OLD, "none")
        seq = last_seq(sim)
        line = d.wait_for(r"event=failover_completed|event=failover_failed",
                          timeout=60)
        assert "failover_completed" in line, line
        assert "mode=restart_in_place" in line
        assert sim.instance(OLD)["boots"] == 2
        assert "known from before it was stopped" in "\n".join(d.lines)
        assert consoles(sim, OLD, since=seq) == []


def test_rollback_to_the_kept_instance_does_not_wait_for_console_keys(
        tmp_path, sim):
    ami = "ami-0bbbbbbbbbbbbbbb2"
    sim.image(ami, copy_of=AMI, name="prod-web-v2")
    with start(tmp_path, sim, policy={"verify_timeout": 8}) as d:
        healthy(d)
        ctl(d.sock, "--yes", "switch", "web", "--ami", ami)
        d.wait_for(r"event=switch_completed", timeout=60)
        new = [i for i in sim.state()["instances"].values()
               if i["id"] != OLD][0]
        # The switch's instance was checked on its private address with
        # the key it was given.
        assert key_of(new) in learned(tmp_path)
        seq = last_seq(sim)
        n = len(d.lines)
        ctl(d.sock, "--yes", "rollback", "web")
        line = d.wait_for(r"event=rollback_completed|event=rollback_failed",
                          timeout=60, start=n)
        assert "rollback_completed" in line, line
        assert sim.instance(OLD)["boots"] == 2
        assert consoles(sim, OLD, since=seq) == []
        healthy(d, timeout=30)


def test_console_source_falls_back_when_latest_is_refused(tmp_path, sim):
    """t2 is Xen: Latest is refused, the buffered output comes
    console_lag after the boot, and failoverd waits for it."""
    sim.set_delays(console_lag=6)
    with start(tmp_path, sim, host_keys="console",
               instance_type="t2.micro") as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed|event=failover_failed",
                          timeout=90)
        assert "failover_completed" in line, line
        new = assert_replaced(sim)
        asked = consoles(sim, new["id"])
        latest = [r for r in asked
                  if str(r["params"].get("Latest")).lower() == "true"]
        # Asked once with Latest, refused, then buffered only.
        assert len(latest) == 1 and len(asked) > 1
        assert "UserData" not in calls(sim, "RunInstances")[0]["params"]
        log = "\n".join(d.lines)
        assert "gives no latest console output" in log
        assert "learnt " + new["id"] + "'s SSH host keys from its " \
            "console" in log
        assert key_of(new) in learned(tmp_path)
        healthy(d, timeout=30)


def test_console_source_with_latest_needs_no_lag(tmp_path, sim):
    """t3 is Nitro: the latest output has the keys at once, although the
    buffered output would come only after 180 s."""
    with start(tmp_path, sim, host_keys="console") as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed|event=failover_failed",
                          timeout=60)
        assert "failover_completed" in line, line
        new = assert_replaced(sim)
        assert key_of(new) in learned(tmp_path)


def test_console_source_without_keys_fails_saying_so(tmp_path, sim):
    no_keys_ever(sim)
    with start(tmp_path, sim, host_keys="console",
               policy={"launch_timeout": 10}) as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed|event=failover_failed",
                          timeout=60)
        assert "failover_failed" in line, line
        new = [i for i in sim.state()["instances"] if i != OLD][0]
        assert f"no SSH host keys on the console of {new} within 10 s" \
            in field(line, "reason")
        assert "passed its deadline" not in line


def test_known_hosts_holding_the_key_is_not_waited_on(tmp_path, sim):
    """An image with a fixed host key (here given by the user's own user
    data) that never prints it, and a known_hosts that holds it for the
    EIP: no console wait with host_keys = "console"."""
    no_keys_ever(sim)
    priv, pub = keygen(tmp_path, "fixed")
    mine = ("#cloud-config\nssh_keys:\n  ed25519_private: |\n" +
            "".join("    " + x + "\n" for x in priv.splitlines()) +
            f"  ed25519_public: {pub}\n").encode()
    eip_ip = sim.address(EIP)["ip"]
    kh = os.path.join(str(tmp_path), "known_hosts")
    with open(sim.known_hosts) as f:
        seeded = f.read()
    with open(kh, "w") as f:
        f.write(seeded + f"{sim.host(eip_ip)} {pub}\n")
    with start(tmp_path, sim, host_keys="console", user_data=mine,
               known_hosts=kh) as d:
        healthy(d)
        sim.instance_fault(OLD, "both")
        line = d.wait_for(r"event=failover_completed|event=failover_failed",
                          timeout=60)
        assert "failover_completed" in line, line
        new = assert_replaced(sim)
        assert key_of(new) == pub
        assert consoles(sim, new["id"]) == []
        assert "not waiting for" in "\n".join(d.lines)
        # The user's data went as it was: nothing of failoverd's in it.
        assert user_data_of(sim) == mine


def test_config_host_keys_known_hosts_needs_the_probes_files(tmp_path):
    """host_keys = "known_hosts" without a known_hosts in the ssh probe
    that follows the EIP could never pass a failover: refused at load."""
    from fodtest import FAILOVERD

    class NoSim:
        http_port, ssh_port, ssh_user = 8080, 2222, "root"
        ssh_key = known_hosts = os.path.join(str(tmp_path), "f")
    open(NoSim.ssh_key, "w").close()
    os.chmod(NoSim.ssh_key, 0o600)
    conf = write_conf(str(tmp_path), NoSim)
    with open(conf) as f:
        text = f.read()

    def check(replace):
        with open(conf, "w") as f:
            f.write(replace(text))
        return subprocess.run([FAILOVERD, "-t", "-c", conf],
                              capture_output=True, text=True, timeout=30)
    ok = check(lambda t: t.replace('instance_type = "t3.micro";',
                                   'instance_type = "t3.micro"; '
                                   'host_keys = "known_hosts";'))
    assert ok.returncode == 0, ok.stderr
    bad = check(lambda t: t.replace(
        'instance_type = "t3.micro";',
        'instance_type = "t3.micro"; host_keys = "known_hosts";').replace(
        f'known_hosts = "{NoSim.known_hosts}";', ""))
    assert bad.returncode == 1
    assert "host_keys" in bad.stderr and "shell" in bad.stderr, bad.stderr
    bogus = check(lambda t: t.replace('instance_type = "t3.micro";',
                                      'instance_type = "t3.micro"; '
                                      'host_keys = "tofu";'))
    assert bogus.returncode == 1 and "host_keys" in bogus.stderr
