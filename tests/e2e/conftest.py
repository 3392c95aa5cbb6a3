"""What the end-to-end tests share: the basic scenario's names, one
failoverd.conf builder, a failoverd started on it against ec2sim, and
the readers of its log and of ec2sim's requests.

pytest loads this file before any test module of this directory; a test
module takes what it needs with `from conftest import ...` and never
imports another test module (test_imports.py checks it), so that a
module's tests are all in that module and each one runs alone.

Helpers (stable names, other modules rely on them):
  write_conf(d, sim, policy=None, probes=("site", "shell"), extra=(),
             name="web", **overrides)    failoverd.conf in directory d
  start(tmp_path, sim, env=None, **kw)  a Daemon on write_conf(**kw)
  events(log, name=None, start=0)       the event= lines of a log
  field(line, key)                      a key=value of one line
  calls(sim, action)                    ec2sim's real (not DryRun) calls
  manual(), start_manual(...)           the same for a service that
                                        never fails over by itself
"""
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ec2sim"))
from fodtest import FAILOVERD, Daemon  # noqa: E402
from simfixture import BASIC, Ec2Sim  # noqa: E402

OLD = BASIC["instance"]
VOLS = BASIC["volumes"]          # device -> volume id
EIP = BASIC["eip"]
OTHER_AZ = "us-east-1b"          # where an evacuation goes

# The demo service's policy: no cooldown, and each step's deadline
# roomy enough for ec2sim's state changes on a busy machine.
POLICY = {"cooldown": 0, "fence_timeout": 20, "launch_timeout": 30,
          "detach_timeout": 5, "attach_timeout": 15,
          "associate_timeout": 10, "verify_timeout": 20}


class Raw(str):
    """Configuration text written as it is (a group body, say)."""


def conf_value(v):
    """v in libconfig syntax: a dict is a group, a list of dicts a list,
    any other list or tuple an array."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ %s }" % conf_settings(v)
    if v and all(isinstance(x, (dict, Raw)) for x in v):
        return "( %s )" % ", ".join(conf_value(x) for x in v)
    return "[ %s ]" % ", ".join(conf_value(x) for x in v)


def conf_settings(d):
    """key = value; for each key of d whose value is not None."""
    return " ".join(f"{k} = {conf_value(v)};" for k, v in d.items()
                    if v is not None)


def merged(base, over):
    """base with the keys of over set; a key set to None is dropped."""
    out = dict(base)
    out.update(over or {})
    return out


def write_conf(d, sim, policy=None, probes=("site", "shell"), extra=(),
               name="web", **overrides):
    """A demo-sized failoverd.conf for the basic scenario in directory d:
    the service name over ec2sim's production instance, its two volumes
    and its Elastic IP, probed by "site" (HTTP) and "shell" (SSH).

    policy is merged into POLICY; extra are more service groups (text).
    overrides, each merged into its part (a key set to None is left out):
      top      the top-level settings (debug, aws, alerts, ...)
      service  the service group (snapshot = Raw("{ ... }"), ...)
      launch   its launch group
      site     the HTTP probe, shell: the SSH probe
      edits    (old, new) text replacements made last; each must match
    Settings come out as `key = value;` separated by one space, so that
    a test may still replace text such as 'instance_type = "t3.micro";'.
    """
    unknown = set(overrides) - {"top", "service", "launch", "site", "shell",
                                "edits"}
    assert not unknown, f"write_conf: unknown overrides {sorted(unknown)}"
    plist = []
    if "site" in probes:
        plist.append(merged({
            "name": "site", "type": "http", "port": sim.http_port,
            "path": "/health", "interval": 0.5, "timeout": 0.4,
            "fall": 2, "rise": 2}, overrides.get("site")))
    if "shell" in probes:
        # An SSH check is a key exchange and a login: 0.9 s leaves room
        # on a busy machine (CI runs two suites at once) for tests that
        # are not about the timeout itself.
        plist.append(merged({
            "name": "shell", "type": "ssh", "port": sim.ssh_port,
            "user": sim.ssh_user, "key_file": sim.ssh_key,
            "known_hosts": sim.known_hosts, "interval": 1.0,
            "timeout": 0.9, "fall": 2, "rise": 2}, overrides.get("shell")))
    launch = merged({
        "ami": BASIC["image"], "instance_type": "t3.micro",
        "subnet": BASIC["subnets"]["us-east-1a"],
        "security_groups": [BASIC["security_group"]],
        "key_name": BASIC["key_name"],
        "iam_instance_profile": BASIC["instance_profile"],
        "tags": {"Name": "prod-web"}}, overrides.get("launch"))
    service = merged({
        "name": name, "eip_allocation_id": EIP,
        "volumes": [{"id": VOLS["/dev/sdf"], "device": "/dev/sdf"},
                    {"id": VOLS["/dev/sdg"], "device": "/dev/sdg"}],
        "launch": launch, "probes": plist,
        "policy": merged(POLICY, policy)}, overrides.get("service"))
    if not plist:
        service["probes"] = Raw("( )")
    top = merged({
        "state_dir": f"{d}/state", "control_socket": f"{d}/control.sock",
        "debug": True,
        "aws": {"calls_per_second": 100, "burst": 100, "call_timeout": 10},
        "alerts": {"rate_limit": 0}}, overrides.get("top"))
    services = ["  { %s }" % conf_settings(service)] + list(extra)
    text = "".join(f"{k} = {conf_value(v)};\n" for k, v in top.items()
                   if v is not None)
    text += "services = (\n%s\n);\n" % ",\n".join(services)
    for old, new in overrides.get("edits", ()):
        assert old in text, old
        text = text.replace(old, new)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    path = os.path.join(d, "failoverd.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def check(path, cwd=None):
    """failoverd -t on the configuration file path."""
    return subprocess.run([FAILOVERD, "-t", "-c", path], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def on_this_machine(tmp_path, path):
    """A file that @includes path (absolute) with a state_dir and a
    control socket directory that exist here: -t checks both, as start
    does, and the shipped files name /var/lib and /run."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    wrap = tmp_path / "here.conf"
    wrap.write_text('state_dir = "%s";\ncontrol_socket = "%s/c.sock";\n'
                    '@include "%s"\n' % (state, tmp_path, path))
    return str(wrap)


def manual(snapshot="", probe_address=None):
    """write_conf overrides for a service that never fails over by
    itself (the snapshot, bake and preflight tests): no policy but
    auto_failover = false, both probes once a second at their default
    fall and rise, snapshot as the body of its snapshot group and, with
    probe_address, the SSH probe (and so the hooks) at that address."""
    return {
        "policy": dict(dict.fromkeys(POLICY), auto_failover=False),
        "site": {"interval": 1.0, "timeout": 0.8, "fall": None,
                 "rise": None},
        "shell": {"address": probe_address, "timeout": 0.8, "fall": None,
                  "rise": None},
        "launch": {"tags": None},
        "service": {"snapshot": Raw("{ %s }" % snapshot)},
    }


def evacuation(azs=(OTHER_AZ,)):
    """The policy of a service that evacuates to the subnets of azs, in
    order, when its volumes' AZ is impaired."""
    return {"evacuate": True,
            "evacuation_subnets": [BASIC["subnets"][az] for az in azs]}


def daemon_env(tmp_path, sim, env=None):
    """The environment failoverd runs in against sim."""
    e = dict(sim.env())
    # failoverd refuses world-writable credential files (/dev/null).
    e["AWS_CONFIG_FILE"] = os.path.join(str(tmp_path), "no-aws-config")
    e["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(str(tmp_path),
                                                   "no-aws-credentials")
    e.update(env or {})
    return e


def start_on(tmp_path, sim, conf, env=None):
    """failoverd on the configuration file conf, against sim."""
    d = Daemon(conf, env=daemon_env(tmp_path, sim, env))
    d.sock = os.path.join(str(tmp_path), "control.sock")
    return d


def start(tmp_path, sim, env=None, **kw):
    """failoverd on write_conf(tmp_path, sim, **kw), against sim."""
    return start_on(tmp_path, sim, write_conf(str(tmp_path), sim, **kw),
                    env=env)


def start_manual(tmp_path, sim, snapshot="", probe_address=None, **kw):
    """start() on the overrides of manual(snapshot, probe_address)."""
    return start(tmp_path, sim, **manual(snapshot, probe_address), **kw)


def events(log, name=None, start=0):
    """The event= lines of log (a Daemon or a list of lines) from index
    start: with name, the lines of that event; without, (event, line)
    for every event."""
    # events(d, n) meant "from line n" before the two kinds of events()
    # became one: refuse it rather than match no event name at all.
    if name is not None and not isinstance(name, str):
        raise TypeError("events(log, name=None, start=0): pass start= "
                        "by keyword")
    out = []
    for line in getattr(log, "lines", log)[start:]:
        if "event=" in line:
            ev = line.split("event=", 1)[1].split()[0]
            out.append((ev, line))
    if name is None:
        return out
    return [line for ev, line in out if ev == name]


def field(line, key):
    """Value of key=value in an event line (quoted or not)."""
    part = line.split(f" {key}=", 1)[1]
    if part.startswith('"'):
        return part[1:].split('"', 1)[0]
    return part.split()[0]


def calls(sim, action):
    """The real (not DryRun) requests ec2sim got for action."""
    return [r for r in sim.requests(action)
            if str(r["params"].get("DryRun", "")).lower() != "true"]


def healthy(d, name="web", timeout=30):
    d.wait_for(rf"service {name}: healthy", timeout=timeout)


def replacement(sim):
    """The instances ec2sim launched (not the scenario's)."""
    st = sim.state()
    return [i for i in st["instances"].values() if i["id"] != OLD]


def assert_replaced(sim, old=OLD):
    """Exactly one replacement of old, from the AMI, in the volumes' AZ,
    with every volume at its device and the EIP; old stopped."""
    st = sim.state()
    new = [i for i in st["instances"].values() if i["id"] != old]
    assert len(new) == 1, json.dumps(st["instances"], indent=1)
    new = new[0]
    assert new["state"] == "running"
    assert new["image"] == BASIC["image"]
    assert new["az"] == BASIC["az"]
    assert new["tags"]["failoverd:service"] == "web"
    assert new["tags"]["failoverd:failover-id"]
    for dev, vid in VOLS.items():
        assert new["volumes"].get(dev) == vid, new["volumes"]
    assert st["addresses"][EIP]["instance"] == new["id"]
    assert st["instances"][old]["state"] == "stopped"
    return new


def curl_health(sim):
    """What the site answers through the Elastic IP."""
    import urllib.request
    ip = sim.address(EIP)["ip"]
    with urllib.request.urlopen(sim.url(ip, "/data"), timeout=10) as r:
        return json.loads(r.read())


def ec2_client(sim, key=None, secret=None, token=None, **cfg):
    """A botocore EC2 client of sim, one attempt a call."""
    import botocore.session
    from botocore.config import Config
    return botocore.session.get_session().create_client(
        "ec2", region_name=sim.region, endpoint_url=sim.endpoint,
        aws_access_key_id=key or sim.access_key,
        aws_secret_access_key=secret or sim.secret_key,
        aws_session_token=token, verify=sim.ca_file or True,
        config=Config(retries={"total_max_attempts": 1}, **cfg))


def two_service_scenario(tmp_path):
    """basic.json plus a second production instance "api" with its own
    volume and Elastic IP, in the same AZ."""
    from simfixture import scenario_path
    with open(scenario_path("basic")) as f:
        sc = json.load(f)
    sc["volumes"].append({"id": "vol-0dbbbbbbbbbbbbbb1", "az": "us-east-1a",
                          "size": 5, "data": "api-db"})
    sc["addresses"].append({"allocation_id": "eipalloc-0bbbbbbbbbbbbbbb1",
                            "instance": "i-0bbbbbbbbbbbbbbb1"})
    api = dict(sc["instances"][0])
    api.update({"id": "i-0bbbbbbbbbbbbbbb1",
                "root_volume": "vol-0bbbbbbbbbbbbbbb0",
                "tags": {"Name": "prod-api", "failoverd:service": "api"},
                "volumes": [{"id": "vol-0dbbbbbbbbbbbbbb1",
                             "device": "/dev/sdf"}]})
    sc["instances"].append(api)
    path = os.path.join(str(tmp_path), "two.json")
    with open(path, "w") as f:
        json.dump(sc, f)
    return path


@pytest.fixture
def sim(tmp_path):
    """ec2sim on the basic scenario, for one test."""
    with Ec2Sim("basic", tmp_path / "sim") as s:
        yield s


# -- snapshots -------------------------------------------------------------


def wait_events(daemon, name, count, timeout=30):
    """The lines of event name once there are count of them."""
    deadline = time.monotonic() + timeout
    while len(events(daemon, name)) < count:
        if time.monotonic() > deadline:
            raise AssertionError("%d x %s not seen within %.1fs; log:\n%s" % (
                count, name, timeout, "\n".join(daemon.lines)))
        daemon.drain(0.1)
    return events(daemon, name)


def ours(sim):
    """The snapshots failoverd took, by id."""
    # Another account's public snapshots may carry the same tags.
    return {sid: s for sid, s in sim.state()["snapshots"].items()
            if s["tags"].get("failoverd:taken-by") == "failoverd"
            and s["owner"] == BASIC["account"]}


def creates(sim):
    """CreateSnapshot calls that were not preflight's dry runs."""
    return [r for r in sim.requests(action="CreateSnapshot")
            if r["params"].get("DryRun") not in ("true", True)]


# -- preflight -------------------------------------------------------------


def preflight_result(d, timeout=30):
    """The last finished preflight of service web, as JSON."""
    from fodtest import ctl
    deadline = time.monotonic() + timeout
    while True:
        p = ctl(d.sock, "preflight", "web", "--result", "--json",
                check=False)
        if p.returncode == 0:
            r = json.loads(p.stdout)
            if not r["running"]:
                return r
        if time.monotonic() > deadline:
            raise AssertionError("no preflight result: %s%s\nlog:\n%s" % (
                p.stdout, p.stderr, "\n".join(d.lines)))
        d.drain(0.1)
