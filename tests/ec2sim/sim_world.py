"""The simulated EC2 world: resources, AWS's state rules, actions.

Every action handler is `op_<Action>(self, p, ctx)`: `p` is the request
parsed by the service model (member names), the return value a dict of
the model's output member names.  All of it runs under `self.lock`;
timed transitions run from the scheduler thread under the same lock.
"""

import base64
import copy
import hashlib
import heapq
import json
import os
import random
import re
import secrets
import subprocess
import threading
import time

import sim_cloudinit
from sim_model import ApiError, iso

DEFAULT_DELAYS = {
    "pending": 0.5,        # pending -> running
    "stopping": 0.5,       # stopping -> stopped
    # Force on a hung OS: EC2's wait for the graceful shutdown before
    # it powers off (then 'stopping' more).  EC2 gives no figure; 3 s
    # is six plain stops, long enough that a test tells the graceful
    # path from SkipOsShutdown, short enough for the suite.
    "graceful_stop": 3.0,
    "shutting_down": 0.5,  # shutting-down -> terminated
    "boot": 0.0,           # running -> sshd/http listening
    "reboot": 0.5,         # CreateImage without NoReboot: listeners down
    "status_init": 0.3,    # running -> status checks 'ok'
    "volume_create": 0.3,  # creating -> available
    "attach": 0.3,         # attaching -> attached
    "detach": 0.3,         # detaching -> detached
    "associate": 0.1,      # EIP association -> traffic moves
    "snapshot": 0.5,       # pending -> completed
    "image": 1.0,          # pending -> available
    # GetConsoleOutput without Latest: the buffered output of a boot is
    # posted this long after the instance entered running; longer than
    # failoverd's default verify_timeout (120 s).
    "console_lag": 180.0,
    # What Describe* shows of a resource lags each mutation of it by
    # this long (a number, or [lo, hi] drawn uniformly per mutation):
    # "Eventual consistency in the Amazon EC2 API".  AWS gives no
    # figure; it says to retry a Describe "starting with a couple of
    # seconds", so a fraction of a second to a couple of seconds.
    "describe_lag": [0.2, 2.0],
}

# Instance families on the Xen hypervisor; every other family (t3, m5,
# c5, ... and all newer ones) is built on Nitro ("Instances built on the
# AWS Nitro System", EC2 User Guide). Only Nitro types give the latest
# console output (GetConsoleOutput, Latest).
XEN_FAMILIES = {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3",
                "r4", "i2", "i3", "d2", "x1", "x1e", "p2", "p3", "g2", "g3",
                "f1", "h1", "cc2", "cr1", "hs1"}


def is_nitro(itype):
    return itype.split(".")[0] not in XEN_FAMILIES


# The resources whose Describe* view lags their mutations.
LAGGED_TABLES = ("instances", "volumes", "snapshots", "images",
                 "addresses")

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32,
               "terminated": 48, "stopping": 64, "stopped": 80}

ID_RE = {
    "i": re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "vol": re.compile(r"^vol-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "snap": re.compile(r"^snap-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "ami": re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "eipalloc": re.compile(r"^eipalloc-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "eipassoc": re.compile(r"^eipassoc-[0-9a-f]{8}([0-9a-f]{9})?$"),
}
NOT_FOUND = {
    "i": ("InvalidInstanceID", "instance ID"),
    "vol": ("InvalidVolume", "volume"),
    "snap": ("InvalidSnapshot", "snapshot"),
    "ami": ("InvalidAMIID", "image id"),
    "eipalloc": ("InvalidAllocationID", "allocation ID"),
    "eipassoc": ("InvalidAssociationID", "association ID"),
}
# "/dev/sdh or xvdh" (AttachVolume, BlockDeviceMapping): both forms.
DEVICE_RE = re.compile(r"^(/dev/)?(sd[a-z][1-9]?|xvd[a-z]{1,2})$")

# DescribeAvailabilityZones: the botocore model's AvailabilityZoneState
# (available, information, impaired, unavailable) and the current API
# reference's "constrained". Only impaired and unavailable zones lose
# capacity and their instances here; the others only say so.
AZ_STATES = ("available", "information", "impaired", "unavailable",
             "constrained")
AZ_DOWN = ("impaired", "unavailable")
AZ_MESSAGES = {
    "information": "This zone has an informational notice",
    "impaired": "Increased error rates and latencies for instances in "
                "this zone",
    "unavailable": "This zone is unavailable",
    "constrained": "Launches in this zone may be limited",
}

# CreateVolume: what each type takes and reports (API reference
# "CreateVolume", user guide "Amazon EBS volume types").
VOLUME_IOPS_TYPES = ("io1", "io2", "gp3")
VOLUME_DEFAULT_TYPE = "gp2"


def volume_perf(vtype, size, iops=None, throughput=None):
    """(iops, throughput) as DescribeVolumes reports them; ApiError when
    CreateVolume would refuse the combination."""
    if iops is not None and vtype not in VOLUME_IOPS_TYPES:
        raise ApiError("InvalidParameterCombination",
                       f"The parameter iops is not supported for {vtype} "
                       f"volumes.")
    if throughput is not None and vtype != "gp3":
        raise ApiError("InvalidParameterCombination",
                       f"The parameter throughput is not supported for "
                       f"{vtype} volumes.")
    if vtype in ("io1", "io2") and iops is None:
        raise ApiError("MissingParameter",
                       f"The request must contain the parameter iops for "
                       f"{vtype} volumes")
    if vtype == "gp3":
        return (3000 if iops is None else iops,
                125 if throughput is None else throughput)
    if vtype == "gp2":
        return min(max(100, 3 * int(size)), 16000), None
    return iops, None


def new_id(prefix):
    return f"{prefix}-0{secrets.token_hex(8)}"


def check_id(kind, value):
    if not ID_RE[kind].match(value or ""):
        code, _ = NOT_FOUND[kind]
        raise ApiError(f"{code}.Malformed",
                       f"Invalid id: \"{value}\" (expecting \"{kind}-...\")")


def not_found(kind, ids):
    code, what = NOT_FOUND[kind]
    if len(ids) == 1:
        if kind in ("i",):
            msg = f"The instance ID '{ids[0]}' does not exist"
        elif kind == "ami":
            msg = f"The image id '[{ids[0]}]' does not exist"
        else:
            msg = f"The {what} '{ids[0]}' does not exist."
    else:
        msg = (f"The {what}s '{', '.join(ids)}' do not exist")
    return ApiError(f"{code}.NotFound", msg)


def tags_out(tags):
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_specs(p, rtype):
    out = {}
    for spec in p.get("TagSpecifications", []):
        if spec.get("ResourceType") == rtype:
            for t in spec.get("Tags", []):
                out[t["Key"]] = t.get("Value", "")
    return out


def _wild(pattern):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                 for c in pattern)
    return re.compile(rf"^{rx}$", re.S)


class Scheduler(threading.Thread):
    """Runs callbacks (under the world lock) at given times."""

    def __init__(self, lock):
        super().__init__(daemon=True, name="scheduler")
        self.lock = lock
        self.cv = threading.Condition(threading.Lock())
        self.heap = []
        self.seq = 0
        self.stopped = False

    def after(self, delay, fn, *args):
        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, (time.monotonic() + max(0.0, delay),
                                       self.seq, fn, args))
            self.cv.notify()

    def stop(self):
        with self.cv:
            self.stopped = True
            self.cv.notify()

    def run(self):
        while True:
            with self.cv:
                while not self.stopped:
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        break
                    wait = self.heap[0][0] - now if self.heap else None
                    self.cv.wait(wait)
                if self.stopped:
                    return
                _, _, fn, args = heapq.heappop(self.heap)
            try:
                with self.lock:
                    fn(*args)
            except Exception as e:  # a bug must not stop the world
                import traceback
                traceback.print_exc()
                print(f"ec2sim: scheduled {fn.__name__} failed: {e}",
                      flush=True, file=__import__("sys").stderr)


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _View(dict):
    """What Describe* sees of a table: the visible objects.  Iteration,
    `in` and .get() see only them; [] of an id the view lacks falls back
    to the real object (an address associated, visibly, with an
    instance launched too recently to be listed still has its IP)."""

    def __init__(self, real):
        super().__init__(real)
        self.real = real

    def __missing__(self, key):
        return self.real[key]


class World:
    def __init__(self, sim, scenario):
        self.sim = sim
        self.lock = threading.RLock()
        self.sched = Scheduler(self.lock)
        self.delays = dict(DEFAULT_DELAYS)
        self.delays.update(scenario.get("delays", {}))
        self.region = scenario.get("region", "us-east-1")
        self.account = str(scenario.get("account", "123456789012"))
        self.vpc = scenario.get("vpc", "vpc-0aaaaaaaaaaaaaaa1")
        self.azs = {}
        for i, az in enumerate(scenario.get(
                "availability_zones",
                [self.region + s for s in "abc"])):
            self.azs[az] = Obj(name=az, impaired=False, tags={},
                               state="available",
                               zone_id=f"use1-az{i + 1}")
        self.subnets = {}
        for s in scenario.get("subnets", []):
            self.subnets[s["id"]] = Obj(id=s["id"], az=s["az"])
        for az in self.azs:  # a default subnet per AZ when none given
            if not any(s.az == az for s in self.subnets.values()):
                sid = "subnet-0" + hashlib.sha1(
                    az.encode()).hexdigest()[:16]
                self.subnets[sid] = Obj(id=sid, az=az)
        self.groups = {g["id"]: g.get("name", g["id"])
                       for g in scenario.get("security_groups", [])}
        self.key_pairs = set(scenario.get("key_pairs", []))
        self.profiles = set(scenario.get("instance_profiles", []))
        self.instances = {}
        self.volumes = {}
        self.snapshots = {}
        self.images = {}
        self.addresses = {}
        self.client_tokens = {}
        # id -> (table, object as Describe* shows it or None for absent,
        # time.monotonic() until which it shows that)
        self.stale = {}
        self.next_instance_ip = 1
        self.next_eip = 1
        self._seed(scenario)

    # ---------------------------------------------------------------
    # helpers
    # ---------------------------------------------------------------
    def now(self):
        return self.sim.now()

    def delay(self, key):
        """Seconds for one event of `key`: its fixed delay, or a draw
        from its [low, high] range (a timing profile, sim_timing.py).
        Read every delay through here, once per event."""
        v = self.delays.get(key, 0.0)
        if isinstance(v, (list, tuple)):
            return random.uniform(v[0], v[1])
        return v

    def after(self, key, fn, *args):
        self.sched.after(self.delay(key), fn, *args)

    def kick(self):
        self.sim.kick_net()

    def set_az_state(self, name, state):
        """impaired and unavailable take the zone's capacity and
        instances away; the other states are only reported."""
        if state == "ok":
            state = "available"
        if state not in AZ_STATES:
            raise ValueError(f"az state {state!r}: one of {AZ_STATES}")
        z = self.azs[name]
        z.state = state
        z.impaired = state in AZ_DOWN

    # ---------------------------------------------------------------
    # eventual consistency
    # ---------------------------------------------------------------
    def describe_lag(self):
        return float(self.delay("describe_lag"))

    def perform(self, action, handler, p, ctx):
        """Runs one API action (under the lock).  A mutation acts on the
        real state; every resource it changed (or made, or deleted) keeps
        showing to Describe* as it was before, for describe_lag.
        Describe* runs against the visible view.  The control API and
        the instances' network always see the real state."""
        if action.startswith("Describe"):
            return self._describe(handler, p, ctx)
        if action.startswith("Get"):
            return handler(p, ctx)
        before = {t: {rid: copy.deepcopy(o)
                      for rid, o in getattr(self, t).items()}
                  for t in LAGGED_TABLES}
        try:
            return handler(p, ctx)
        finally:
            self._lag_changes(before)

    def _lag_changes(self, before):
        now = time.monotonic()
        until = None
        for t in LAGGED_TABLES:
            real = getattr(self, t)
            for rid in set(before[t]) | set(real):
                old, new = before[t].get(rid), real.get(rid)
                if (old is not None and new is not None
                        and vars(old) == vars(new)):
                    continue
                if until is None:
                    until = now + self.describe_lag()
                seen = self.stale.get(rid)
                if seen is not None and seen[2] > now:
                    # Still showing an older view: that stays, until
                    # this change is visible too.
                    self.stale[rid] = (t, seen[1], max(seen[2], until))
                else:
                    self.stale[rid] = (t, old, until)

    def _describe(self, handler, p, ctx):
        now = time.monotonic()
        for rid in [r for r, s in self.stale.items() if s[2] <= now]:
            del self.stale[rid]
        if not self.stale:
            return handler(p, ctx)
        real = {t: getattr(self, t) for t in LAGGED_TABLES}
        views = {t: _View(real[t]) for t in LAGGED_TABLES}
        for rid, (t, shown, _) in self.stale.items():
            if shown is None:
                views[t].pop(rid, None)
            else:
                views[t][rid] = shown
        try:
            for t in LAGGED_TABLES:
                setattr(self, t, views[t])
            return handler(p, ctx)
        finally:
            for t in LAGGED_TABLES:
                setattr(self, t, real[t])

    def _get(self, table, kind, rid):
        check_id(kind, rid)
        obj = table.get(rid)
        if obj is None:
            raise not_found(kind, [rid])
        return obj

    def _select(self, table, kind, ids):
        if not ids:
            return list(table.values())
        for i in ids:
            check_id(kind, i)
        missing = [i for i in ids if i not in table]
        if missing:
            raise not_found(kind, missing)
        return [table[i] for i in dict.fromkeys(ids)]

    def _filter(self, items, filters, fields):
        """fields: name -> fn(obj) -> list of str values."""
        for f in filters or []:
            name = f.get("Name", "")
            values = f.get("Values", [])
            if name.startswith("tag:"):
                key = name[4:]

                def get(o, key=key):
                    return [o.tags[key]] if key in o.tags else []
            elif name == "tag-key":
                def get(o):
                    return list(o.tags)
            elif name == "tag-value":
                def get(o):
                    return list(o.tags.values())
            elif name in fields:
                get = fields[name]
            else:
                raise ApiError("InvalidParameterValue",
                               f"The filter '{name}' is invalid")
            pats = [_wild(v) for v in values]
            items = [o for o in items
                     if any(p.match(str(x)) for p in pats
                            for x in get(o))]
        return items

    def _paginate(self, items, p, lo, hi, action):
        token = p.get("NextToken")
        start = 0
        if token:
            try:
                d = json.loads(base64.urlsafe_b64decode(token.encode()))
                assert d["a"] == action
                start = int(d["o"])
            except Exception:
                raise ApiError("InvalidParameterValue",
                               f"Invalid NextToken '{token}'") from None
        mx = p.get("MaxResults")
        if mx is None:
            return items[start:], None
        if mx < lo:
            raise ApiError("InvalidParameterValue",
                           f"Value ( {mx} ) for parameter maxResults is "
                           f"invalid. Expecting a value greater than "
                           f"{lo}.")
        # Above the maximum AWS returns the maximum, no error.
        mx = min(mx, hi)
        page = items[start:start + mx]
        nxt = None
        if start + mx < len(items):
            nxt = base64.urlsafe_b64encode(json.dumps(
                {"a": action, "o": start + mx}).encode()).decode()
        return page, nxt

    @staticmethod
    def _dry(p):
        return p.get("DryRun", False)

    # ---------------------------------------------------------------
    # seeding
    # ---------------------------------------------------------------
    def _seed(self, sc):
        now = self.now()
        for im in sc.get("images", []):
            self.images[im["id"]] = Obj(
                id=im["id"], name=im.get("name", im["id"]),
                description=im.get("description", ""), state="available",
                created=now - 86400, owner=self.account,
                root_device=im.get("root_device", "/dev/xvda"),
                mappings=[], tags=dict(im.get("tags", {})),
                emit_keys=bool(im.get("emit_keys_to_console", True)))
            root_snap = im.get("root_snapshot",
                               "snap-0" + hashlib.sha1(
                                   im["id"].encode()).hexdigest()[:16])
            self._new_snapshot(root_snap, None, im.get("root_size", 8), "",
                               f"Created by CreateImage for {im['id']}",
                               {}, now - 86400, "completed")
            self.images[im["id"]].mappings.append(
                {"device": self.images[im["id"]].root_device,
                 "snapshot": root_snap, "size": im.get("root_size", 8),
                 "dot": True})
        for v in sc.get("volumes", []):
            self._new_volume(v["id"], v["az"], v.get("size", 10),
                             v.get("snapshot"), v.get("data", ""),
                             dict(v.get("tags", {})), "available",
                             v.get("type", "gp3"), v.get("iops"),
                             v.get("throughput"))
        for s in sc.get("snapshots", []):
            vol = self.volumes.get(s.get("volume"))
            data = s.get("data", vol.data if vol else "")
            snap = self._new_snapshot(
                s["id"], s.get("volume"),
                s.get("size", vol.size if vol else 10), data,
                s.get("description", ""), dict(s.get("tags", {})),
                now - s.get("age", 3600), "completed")
            # Another account's snapshot shared with everyone.
            snap.owner = str(s.get("owner", self.account))
            snap.public = bool(s.get("public", False))
        for a in sc.get("addresses", []):
            self._new_address(a.get("allocation_id"),
                              dict(a.get("tags", {})))
        for spec in sc.get("instances", []):
            self._seed_instance(spec, now)
        for a in sc.get("addresses", []):
            if a.get("instance"):
                addr = self.addresses[a["allocation_id"]]
                self._associate(addr, self.instances[a["instance"]])
                addr.route = a["instance"]

    def _seed_instance(self, spec, now):
        subnet = self.subnets[spec["subnet"]]
        image = self.images[spec["image"]]
        inst = self._new_instance(
            spec["id"], image, spec.get("type", "t3.micro"), subnet,
            spec.get("key_name"), spec.get("security_groups", []),
            spec.get("iam_profile"), dict(spec.get("tags", {})),
            None, "r-0" + secrets.token_hex(8), 0)
        inst.launch = now - 3600
        state = spec.get("state", "running")
        inst.state = state
        inst.since = now - 3600
        if state == "running":
            inst.running_since = now - 3600
        # It booted once, an hour ago: its first boot's output is posted.
        inst.boots = [{"start": now - 3600, "keys": inst.emit_keys}]
        root = spec.get("root_volume")
        if root:
            self._new_volume(root, subnet.az, image.mappings[0]["size"],
                             image.mappings[0]["snapshot"], "", {},
                             "in-use", "gp3")
            self._attach(self.volumes[root], inst, image.root_device,
                         "attached", True)
        for v in spec.get("volumes", []):
            vol = self.volumes[v["id"]]
            vol.state = "in-use"
            self._attach(vol, inst, v["device"], "attached",
                         v.get("delete_on_termination", False))

    # ---------------------------------------------------------------
    # constructors and transitions
    # ---------------------------------------------------------------
    def _new_volume(self, vid, az, size, snap, data, tags, state, vtype,
                    iops=None, throughput=None):
        iops, throughput = volume_perf(vtype, size, iops, throughput)
        self.volumes[vid] = Obj(
            id=vid, az=az, size=int(size), snapshot=snap or "",
            data=data, tags=tags, state=state, created=self.now(),
            type=vtype, iops=iops, throughput=throughput, att=None,
            detach_busy=False, detach_stuck=False)
        return self.volumes[vid]

    def _new_snapshot(self, sid, vid, size, data, desc, tags, start, state):
        self.snapshots[sid] = Obj(
            id=sid, volume=vid or "vol-ffffffff", size=int(size), data=data,
            description=desc, tags=tags, start=start, state=state,
            owner=self.account, public=False)
        return self.snapshots[sid]

    def _new_address(self, alloc=None, tags=None):
        if self.next_eip > 254:
            raise ApiError("AddressLimitExceeded",
                           "The maximum number of addresses has been "
                           "reached.")
        ip = f"{self.sim.net}.2.{self.next_eip}"
        self.next_eip += 1
        alloc = alloc or new_id("eipalloc")
        self.addresses[alloc] = Obj(
            id=alloc, ip=ip, assoc=None, instance=None, route=None,
            tags=tags or {})
        self.sim.add_forwarder(alloc, ip)
        return self.addresses[alloc]

    def _new_instance(self, iid, image, itype, subnet, key, groups,
                      profile, tags, token, rid, index):
        if self.next_instance_ip > 254:
            raise ApiError("InstanceLimitExceeded",
                           "You have requested more instances than your "
                           "current instance limit allows.")
        ip = f"{self.sim.net}.1.{self.next_instance_ip}"
        self.next_instance_ip += 1
        d = os.path.join(self.sim.workdir, "instances", iid)
        os.makedirs(d, exist_ok=True)
        hostkey = os.path.join(d, "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-C", f"root@{iid}", "-f", hostkey],
                       check=True, stdin=subprocess.DEVNULL)
        with open(hostkey + ".pub") as f:
            pub = f.read().strip()
        inst = Obj(
            id=iid, image=image.id, type=itype, az=subnet.az,
            subnet=subnet.id, ip=ip, key=key, groups=list(groups),
            profile=profile, tags=tags, token=token, reservation=rid,
            index=index, launch=self.now(), state="pending",
            since=self.now(), reason="", state_reason=None,
            root_device=image.root_device, dir=d, hostkey=hostkey,
            hostkey_pub=pub, faults=set(getattr(image, "faults", ())),
            console_pub=pub, emit_keys=getattr(image, "emit_keys", True),
            boots=[],
            stuck_stopping=False, stop_gen=0, stop_skip_os=False,
            running_since=None, reboot_until=0.0)
        self.instances[iid] = inst
        self.sim.add_runtime(inst)
        return inst

    def _set_state(self, inst, state, reason=None):
        if inst.state == state:
            return
        self.sim.event(f"instance {inst.id}: {inst.state} -> {state}")
        inst.state = state
        inst.since = self.now()
        if state == "running":
            inst.running_since = self.now()
            # cloud-init prints the host keys on the instance's first
            # boot only (cc_keys_to_console runs once per instance).
            inst.boots.append({"start": inst.running_since,
                               "keys": inst.emit_keys and not inst.boots})
            # Drawn once per boot: every later look agrees with it.
            boot = inst.boot = self.delay("boot")
            inst.status_init = self.delay("status_init")
            if boot > 0:
                self.sched.after(boot, self.kick)
        if reason is not None:
            inst.state_reason = reason
        self.kick()

    def _attach(self, vol, inst, device, state, dot):
        vol.att = {"instance": inst.id, "device": device, "state": state,
                   "time": self.now(), "dot": dot}

    def _associate(self, addr, inst):
        # An instance's primary address has one EIP: a second one
        # replaces the first.
        for other in self.addresses.values():
            if other is not addr and other.instance == inst.id:
                self._disassociate(other)
        addr.instance = inst.id
        addr.assoc = new_id("eipassoc")
        self.after("associate", self._route, addr.id, addr.assoc)

    def _disassociate(self, addr):
        addr.instance = None
        addr.assoc = None
        addr.route = None
        self.kick()

    def _route(self, alloc, assoc):
        addr = self.addresses.get(alloc)
        if addr and addr.assoc == assoc:
            addr.route = addr.instance
            self.sim.event(f"address {addr.ip} -> {addr.instance}")
            self.kick()

    def instance_desired(self, inst):
        """(ssh_mode, http_mode) for the instance's listeners."""
        if inst.state != "running" or inst.running_since is None:
            return "off", "off"
        if self.now() < inst.running_since + getattr(inst, "boot", 0):
            return "off", "off"
        if self.now() < inst.reboot_until:
            return "off", "off"
        if self.os_hung(inst) or self.azs[inst.az].impaired:
            return "blackhole", "blackhole"
        ssh = "off" if "ssh_down" in inst.faults else "up"
        http = "off" if "http_down" in inst.faults else "up"
        # A release that breaks only on production data: healthy alone,
        # HTTP down once a data (non-root) volume is attached.
        if "http_down_with_data" in inst.faults and any(
                v.att and v.att["instance"] == inst.id
                and v.att["state"] == "attached"
                and v.att["device"] != inst.root_device
                for v in self.volumes.values()):
            http = "off"
        return ssh, http

    def address_target(self, addr):
        inst = self.instances.get(addr.route) if addr.route else None
        return inst.ip if inst else None

    # data seen by the instance's HTTP server
    def instance_data(self, iid):
        with self.lock:
            out = []
            for v in sorted(self.volumes.values(),
                            key=lambda v: v.att["device"] if v.att else ""):
                if (v.att and v.att["instance"] == iid
                        and v.att["state"] != "attaching"
                        and v.att["device"] != self.instances[iid]
                        .root_device):
                    out.append({"device": v.att["device"],
                                "volume_id": v.id, "data": v.data})
            return out

    def instance_write(self, iid, device, data):
        with self.lock:
            for v in self.volumes.values():
                if (v.att and v.att["instance"] == iid
                        and v.att["device"] == device
                        and v.att["state"] != "attaching"):
                    v.data = data
                    return True
            return False

    # ---------------------------------------------------------------
    # output shapes
    # ---------------------------------------------------------------
    def _state(self, inst_state):
        return {"Code": STATE_CODES[inst_state], "Name": inst_state}

    def _instance_out(self, inst):
        eip = next((a for a in self.addresses.values()
                    if a.instance == inst.id), None)
        bdm = []
        for v in sorted(self.volumes.values(), key=lambda v: v.id):
            if v.att and v.att["instance"] == inst.id:
                bdm.append({"DeviceName": v.att["device"], "Ebs": {
                    "AttachTime": v.att["time"],
                    "DeleteOnTermination": v.att["dot"],
                    "Status": v.att["state"], "VolumeId": v.id}})
        bdm.sort(key=lambda b: b["DeviceName"])
        host = "ip-" + inst.ip.replace(".", "-")
        out = {
            "AmiLaunchIndex": inst.index, "ImageId": inst.image,
            "InstanceId": inst.id, "InstanceType": inst.type,
            "LaunchTime": inst.launch,
            "Monitoring": {"State": "disabled"},
            "Placement": {"AvailabilityZone": inst.az, "GroupName": "",
                          "Tenancy": "default"},
            "PrivateDnsName": f"{host}.ec2.internal",
            "PrivateIpAddress": inst.ip,
            "ProductCodes": [],
            "PublicDnsName": "",
            "State": self._state(inst.state),
            "StateTransitionReason": inst.reason,
            "SubnetId": inst.subnet, "VpcId": self.vpc,
            "Architecture": "x86_64", "BlockDeviceMappings": bdm,
            "EbsOptimized": False, "EnaSupport": True,
            "Hypervisor": "xen", "RootDeviceName": inst.root_device,
            "RootDeviceType": "ebs",
            "SecurityGroups": [{"GroupName": self.groups.get(g, g),
                                "GroupId": g} for g in inst.groups],
            "SourceDestCheck": True, "Tags": tags_out(inst.tags) or None,
            "VirtualizationType": "hvm",
        }
        if inst.key:
            out["KeyName"] = inst.key
        if inst.token:
            out["ClientToken"] = inst.token
        if inst.profile:
            out["IamInstanceProfile"] = {
                "Arn": f"arn:aws:iam::{self.account}:instance-profile/"
                       f"{inst.profile}",
                "Id": "AIPA" + hashlib.sha1(
                    inst.profile.encode()).hexdigest()[:17].upper()}
        if inst.state_reason:
            out["StateReason"] = {"Code": inst.state_reason[0],
                                  "Message": inst.state_reason[1]}
        if eip and inst.state not in ("terminated", "shutting-down"):
            out["PublicIpAddress"] = eip.ip
            out["PublicDnsName"] = (
                "ec2-" + eip.ip.replace(".", "-")
                + ".compute-1.amazonaws.com")
        if inst.state in ("terminated",):
            out.pop("PrivateIpAddress")
            out["PrivateDnsName"] = ""
        return out

    def _reservations(self, insts):
        res = {}
        for inst in insts:
            r = res.setdefault(inst.reservation, {
                "ReservationId": inst.reservation, "OwnerId": self.account,
                "Groups": [], "Instances": []})
            r["Instances"].append(self._instance_out(inst))
        return list(res.values())

    def _volume_out(self, v):
        atts = []
        if v.att:
            atts.append(self._att_out(v))
        out = {"Attachments": atts, "AvailabilityZone": v.az,
               "CreateTime": v.created, "Encrypted": False, "Size": v.size,
               "SnapshotId": v.snapshot, "State": v.state,
               "VolumeId": v.id, "Iops": v.iops, "VolumeType": v.type,
               "MultiAttachEnabled": False, "Throughput": v.throughput,
               "Tags": tags_out(v.tags) or None}
        return out

    def _att_out(self, v):
        a = v.att
        return {"AttachTime": a["time"], "Device": a["device"],
                "InstanceId": a["instance"], "State": a["state"],
                "VolumeId": v.id, "DeleteOnTermination": a["dot"]}

    def _snapshot_out(self, s):
        return {"Description": s.description, "Encrypted": False,
                "OwnerId": s.owner,
                "Progress": "100%" if s.state == "completed" else "0%",
                "SnapshotId": s.id, "StartTime": s.start, "State": s.state,
                "VolumeId": s.volume, "VolumeSize": s.size,
                "StorageTier": "standard",
                "Tags": tags_out(s.tags) or None}

    def _image_out(self, im):
        return {
            "Architecture": "x86_64", "CreationDate": iso(im.created),
            "ImageId": im.id,
            "ImageLocation": f"{self.account}/{im.name}",
            "ImageType": "machine", "Public": False,
            "OwnerId": im.owner, "PlatformDetails": "Linux/UNIX",
            "UsageOperation": "RunInstances", "State": im.state,
            "BlockDeviceMappings": [
                {"DeviceName": m["device"], "Ebs": {
                    "DeleteOnTermination": m["dot"],
                    "SnapshotId": m["snapshot"], "VolumeSize": m["size"],
                    "VolumeType": m.get("type", "gp3"),
                    "Iops": m.get("iops"), "Throughput": m.get("throughput"),
                    "Encrypted": False}}
                for m in im.mappings],
            "Description": im.description, "EnaSupport": True,
            "Hypervisor": "xen", "Name": im.name,
            "RootDeviceName": im.root_device, "RootDeviceType": "ebs",
            "SriovNetSupport": "simple", "VirtualizationType": "hvm",
            "Tags": tags_out(im.tags) or None}

    def _address_out(self, a):
        out = {"PublicIp": a.ip, "AllocationId": a.id, "Domain": "vpc",
               "PublicIpv4Pool": "amazon",
               "NetworkBorderGroup": self.region,
               "Tags": tags_out(a.tags) or None}
        if a.instance:
            inst = self.instances[a.instance]
            out.update({"InstanceId": a.instance, "AssociationId": a.assoc,
                        "NetworkInterfaceId": "eni-0" + a.instance[-16:],
                        "NetworkInterfaceOwnerId": self.account,
                        "PrivateIpAddress": inst.ip})
        return out

    # ---------------------------------------------------------------
    # instances
    # ---------------------------------------------------------------
    def op_RunInstances(self, p, ctx):
        token = p.get("ClientToken")
        fingerprint = json.dumps({k: v for k, v in p.items()
                                  if k not in ("ClientToken", "DryRun")},
                                 sort_keys=True)
        if token and token in self.client_tokens:
            prev_fp, ids = self.client_tokens[token]
            if prev_fp != fingerprint:
                raise ApiError("IdempotentParameterMismatch",
                               "Arguments on this idempotent request are "
                               "inconsistent with arguments used in "
                               "previous request(s).")
            insts = [self.instances[i] for i in ids]
            r = self._reservations(insts)[0]
            return r
        image_id = p.get("ImageId")
        if not image_id:
            raise ApiError("MissingParameter",
                           "The request must contain the parameter ImageId")
        image = self.images.get(image_id)
        check_id("ami", image_id)
        if image is None or image.state == "deregistered":
            raise not_found("ami", [image_id])
        if image.state != "available":
            raise ApiError("InvalidAMIID.Unavailable",
                           f"The image id '[{image_id}]' is no longer "
                           f"available")
        mn, mx = p["MinCount"], p["MaxCount"]
        if mn < 1 or mx < mn:
            raise ApiError("InvalidParameterValue",
                           f"Invalid value '{mx}' for maxCount. Must be "
                           f"at least minCount ({mn}) and at least 1.")
        subnet = None
        az = (p.get("Placement") or {}).get("AvailabilityZone")
        if p.get("SubnetId"):
            subnet = self.subnets.get(p["SubnetId"])
            if subnet is None:
                raise ApiError("InvalidSubnetID.NotFound",
                               f"The subnet ID '{p['SubnetId']}' does "
                               f"not exist")
            if az and az != subnet.az:
                raise ApiError("InvalidParameterValue",
                               f"Value ({az}) for parameter "
                               f"availabilityZone is invalid. Subnet "
                               f"'{subnet.id}' is in the availability zone "
                               f"{subnet.az}")
        else:
            if az and az not in self.azs:
                raise ApiError("InvalidParameterValue",
                               f"Invalid availability zone: [{az}]")
            subnet = next(s for s in self.subnets.values()
                          if az is None or s.az == az)
        itype = p.get("InstanceType", "m1.small")
        if p.get("KeyName") and p["KeyName"] not in self.key_pairs:
            raise ApiError("InvalidKeyPair.NotFound",
                           f"The key pair '{p['KeyName']}' does not exist")
        groups = p.get("SecurityGroupIds", [])
        for g in groups:
            if g not in self.groups:
                raise ApiError("InvalidGroup.NotFound",
                               f"The security group '{g}' does not exist")
        if not groups and self.groups:
            groups = [sorted(self.groups)[0]]
        prof = (p.get("IamInstanceProfile") or {}).get("Name")
        if prof and prof not in self.profiles:
            raise ApiError("InvalidParameterValue",
                           f"Value ({prof}) for parameter "
                           f"iamInstanceProfile.name is invalid. Invalid "
                           f"IAM Instance Profile name")
        if self.azs[subnet.az].impaired:
            others = ", ".join(a for a in self.azs
                               if a != subnet.az and not
                               self.azs[a].impaired)
            raise ApiError(
                "InsufficientInstanceCapacity",
                f"We currently do not have sufficient {itype} capacity in "
                f"the Availability Zone you requested ({subnet.az}). Our "
                f"system will be working on provisioning additional "
                f"capacity. You can currently get {itype} capacity by not "
                f"specifying an Availability Zone in your request or "
                f"choosing {others}.")
        mappings = self._launch_mappings(image, p.get("BlockDeviceMappings",
                                                      []))
        user_data = None
        if p.get("UserData") is not None:
            user_data = sim_cloudinit.decode(p["UserData"])
        if self._dry(p):
            return None
        rid = new_id("r")
        itags = tag_specs(p, "instance")
        vtags = tag_specs(p, "volume")
        insts = []
        for n in range(mx):
            inst = self._new_instance(
                new_id("i"), image, itype, subnet, p.get("KeyName"),
                groups, prof, dict(itags), token, rid, n)
            if user_data is not None:
                self._apply_user_data(inst, user_data)
            for m in mappings:
                snap = self.snapshots.get(m["snapshot"])
                vol = self._new_volume(new_id("vol"), subnet.az, m["size"],
                                       m["snapshot"],
                                       snap.data if snap else "",
                                       dict(vtags), "in-use",
                                       m.get("type", "gp3"),
                                       m.get("iops") if m.get("type", "gp3")
                                       in VOLUME_IOPS_TYPES else None,
                                       m.get("throughput"))
                self._attach(vol, inst, m["device"], "attached", m["dot"])
            insts.append(inst)
            self.sim.event(f"instance {inst.id}: launched in {inst.az} "
                           f"at {inst.ip}")
            self.after("pending", self._pending_done, inst.id)
        if token:
            self.client_tokens[token] = (fingerprint,
                                         [i.id for i in insts])
        return self._reservations(insts)[0]

    def _apply_user_data(self, inst, raw):
        """cloud-init's ssh module on first boot: ssh_keys replace the
        generated host key (only ed25519 is modelled)."""
        key = sim_cloudinit.ssh_host_key(sim_cloudinit.cloud_config(raw))
        if key is None:
            return
        priv, pub = key
        with open(inst.hostkey, "w") as f:
            f.write(priv)
        os.chmod(inst.hostkey, 0o600)
        # What sshd will present: the private key's own public half.
        r = subprocess.run(["ssh-keygen", "-y", "-f", inst.hostkey],
                           capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            # sshd loads no host key and does not start.
            inst.faults.add("ssh_down")
            self.sim.event(f"instance {inst.id}: ssh_keys.ed25519_private "
                           f"is no usable key; sshd will not start")
            return
        inst.hostkey_pub = " ".join(r.stdout.split()[:2])
        # cloud-init writes ed25519_public as given to the .pub file,
        # which is what it prints on the console.
        inst.console_pub = (pub or inst.hostkey_pub).strip()
        self.sim.event(f"instance {inst.id}: host key from user data")

    def _launch_mappings(self, image, overrides):
        """The image's block devices as changed by BlockDeviceMapping.N."""
        maps = {m["device"]: dict(m) for m in image.mappings}
        for o in overrides:
            dev = o.get("DeviceName")
            if not dev or not DEVICE_RE.match(dev):
                raise ApiError("InvalidBlockDeviceMapping",
                               f"Invalid device name {dev}")
            if "NoDevice" in o:
                if dev == image.root_device:
                    raise ApiError("InvalidBlockDeviceMapping",
                                   "The root device cannot be removed")
                maps.pop(dev, None)
                continue
            ebs = o.get("Ebs") or {}
            m = maps.setdefault(dev, {"device": dev, "snapshot": "",
                                      "size": None, "dot": True})
            if ebs.get("SnapshotId"):
                snap = self._get(self.snapshots, "snap", ebs["SnapshotId"])
                m["snapshot"], m["size"] = snap.id, snap.size
            if "VolumeSize" in ebs:
                if m["size"] and ebs["VolumeSize"] < m["size"]:
                    raise ApiError(
                        "InvalidBlockDeviceMapping",
                        f"Volume of size {ebs['VolumeSize']}GB is smaller "
                        f"than snapshot '{m['snapshot']}', expect size >= "
                        f"{m['size']}GB")
                m["size"] = ebs["VolumeSize"]
            if "DeleteOnTermination" in ebs:
                m["dot"] = ebs["DeleteOnTermination"]
            if not m["size"]:
                raise ApiError("InvalidBlockDeviceMapping",
                               f"The device {dev} needs a VolumeSize or a "
                               f"SnapshotId")
        return sorted(maps.values(), key=lambda m: (
            m["device"] != image.root_device, m["device"]))

    def _pending_done(self, iid):
        inst = self.instances[iid]
        if inst.state == "pending":
            self._set_state(inst, "running")

    def op_DescribeInstances(self, p, ctx):
        ids = p.get("InstanceIds")
        if ids and "MaxResults" in p:
            raise ApiError("InvalidParameterCombination",
                           "The parameter instancesSet cannot be used with "
                           "the parameter maxResults")
        insts = self._select(self.instances, "i", ids)
        insts = self._filter(insts, p.get("Filters"), {
            "instance-id": lambda i: [i.id],
            "instance-state-name": lambda i: [i.state],
            "instance-state-code": lambda i: [STATE_CODES[i.state]],
            "availability-zone": lambda i: [i.az],
            "subnet-id": lambda i: [i.subnet],
            "vpc-id": lambda i: [self.vpc],
            "image-id": lambda i: [i.image],
            "instance-type": lambda i: [i.type],
            "key-name": lambda i: [i.key] if i.key else [],
            "private-ip-address": lambda i: [i.ip],
            "ip-address": lambda i: [a.ip for a in self.addresses.values()
                                     if a.instance == i.id],
            "reservation-id": lambda i: [i.reservation],
            "client-token": lambda i: [i.token] if i.token else [],
            "block-device-mapping.volume-id": lambda i: [
                v.id for v in self.volumes.values()
                if v.att and v.att["instance"] == i.id],
        })
        insts.sort(key=lambda i: i.launch)
        page, nxt = self._paginate(insts, p, 5, 1000, "DescribeInstances")
        return {"Reservations": self._reservations(page), "NextToken": nxt}

    def _change(self, inst, prev):
        return {"InstanceId": inst.id, "CurrentState": self._state(
            inst.state), "PreviousState": self._state(prev)}

    def _user_reason(self):
        return time.strftime("User initiated (%Y-%m-%d %H:%M:%S GMT)",
                             time.gmtime(self.now()))

    @staticmethod
    def os_hung(inst):
        """The instance's OS no longer runs its shutdown: an explicit
        os_hung, or a blackhole (connections accepted by the kernel,
        then silence: nothing above it answers).  ssh_down/http_down
        (refused: the OS answers, its services are down) leave the
        OS able to shut down."""
        return "os_hung" in inst.faults or "blackhole" in inst.faults

    def op_StopInstances(self, p, ctx):
        insts = self._select(self.instances, "i", p["InstanceIds"])
        for inst in insts:
            if inst.state in ("terminated", "shutting-down"):
                raise ApiError("IncorrectInstanceState",
                               f"This instance '{inst.id}' is not in a "
                               f"state from which it can be stopped.")
        if self._dry(p):
            return None
        force = p.get("Force", False)
        skip = p.get("SkipOsShutdown", False)
        out = []
        for inst in insts:
            prev = inst.state
            if inst.state in ("pending", "running"):
                inst.reason = self._user_reason()
                inst.stop_gen = getattr(inst, "stop_gen", 0) + 1
                # Bypassing the OS shutdown holds for the whole
                # transition (Methods for stopping an instance).
                inst.stop_skip_os = False
                self._set_state(inst, "stopping",
                                ("Client.UserInitiatedShutdown",
                                 "Client.UserInitiatedShutdown: User "
                                 "initiated shutdown"))
            if inst.state == "stopping":
                inst.stop_skip_os = inst.stop_skip_os or skip
                delay = self._stop_delay(inst, force)
                if delay is not None:
                    self.sched.after(delay, self._stopping_done, inst.id,
                                     inst.stop_gen)
            out.append(self._change(inst, prev))
        return {"StoppingInstances": out}

    def _stop_delay(self, inst, force):
        """Seconds until a stop in progress ends, None: it does not.
        EC2 first asks the OS to shut down (flushing its caches);
        SkipOsShutdown powers off without asking; Force powers off
        when the graceful attempt has not finished within its timeout
        (graceful_stop).  Without Force, a hung OS or a host stuck
        stopping leaves the instance stopping."""
        if inst.stuck_stopping and not force:
            return None
        if inst.stop_skip_os or not self.os_hung(inst):
            return self.delay("stopping")
        if not force:
            return None
        return self.delay("graceful_stop") + self.delay("stopping")

    def _stopping_done(self, iid, gen):
        inst = self.instances[iid]
        if inst.state == "stopping" and inst.stop_gen == gen:
            self._set_state(inst, "stopped")

    def op_StartInstances(self, p, ctx):
        insts = self._select(self.instances, "i", p["InstanceIds"])
        for inst in insts:
            if inst.state not in ("stopped", "running", "pending"):
                raise ApiError("IncorrectInstanceState",
                               f"The instance '{inst.id}' is not in a "
                               f"state from which it can be started.")
            if inst.state == "stopped" and self.azs[inst.az].impaired:
                raise ApiError(
                    "InsufficientInstanceCapacity",
                    f"Insufficient capacity in {inst.az}.")
        if self._dry(p):
            return None
        out = []
        for inst in insts:
            prev = inst.state
            if inst.state == "stopped":
                inst.reason = ""
                inst.state_reason = None
                self._set_state(inst, "pending")
                self.after("pending", self._pending_done, inst.id)
            out.append(self._change(inst, prev))
        return {"StartingInstances": out}

    def op_TerminateInstances(self, p, ctx):
        insts = self._select(self.instances, "i", p["InstanceIds"])
        if self._dry(p):
            return None
        out = []
        for inst in insts:
            prev = inst.state
            if inst.state not in ("terminated", "shutting-down"):
                inst.reason = self._user_reason()
                self._set_state(inst, "shutting-down",
                                ("Client.UserInitiatedShutdown",
                                 "Client.UserInitiatedShutdown: User "
                                 "initiated shutdown"))
                self.after("shutting_down", self._terminated, inst.id)
            out.append(self._change(inst, prev))
        return {"TerminatingInstances": out}

    def _terminated(self, iid):
        inst = self.instances[iid]
        if inst.state != "shutting-down":
            return
        self._set_state(inst, "terminated")
        for v in list(self.volumes.values()):
            if v.att and v.att["instance"] == iid:
                if v.att["dot"]:
                    del self.volumes[v.id]
                else:
                    v.att = None
                    v.state = "available"
        for a in self.addresses.values():
            if a.instance == iid:
                self._disassociate(a)

    def _status(self, inst):
        running = inst.state == "running"
        if not running:
            summ = {"Status": "not-applicable", "Details": None}
            return summ, dict(summ)
        az_bad = self.azs[inst.az].impaired
        init = (self.now() < inst.running_since
                + getattr(inst, "status_init", 0))

        def one(bad):
            if bad:
                return {"Status": "impaired", "Details": [
                    {"Name": "reachability", "Status": "failed",
                     "ImpairedSince": inst.since}]}
            if init:
                return {"Status": "initializing", "Details": [
                    {"Name": "reachability", "Status": "initializing"}]}
            return {"Status": "ok", "Details": [
                {"Name": "reachability", "Status": "passed"}]}
        system = one(az_bad or "status_impaired" in inst.faults)
        instance = one("instance_impaired" in inst.faults)
        return instance, system

    def op_DescribeInstanceStatus(self, p, ctx):
        ids = p.get("InstanceIds")
        if ids and "MaxResults" in p:
            raise ApiError("InvalidParameterCombination",
                           "The parameter instancesSet cannot be used with "
                           "the parameter maxResults")
        insts = self._select(self.instances, "i", ids)
        if not p.get("IncludeAllInstances"):
            insts = [i for i in insts if i.state == "running"]
        insts = self._filter(insts, p.get("Filters"), {
            "availability-zone": lambda i: [i.az],
            "instance-state-name": lambda i: [i.state],
            "instance-state-code": lambda i: [STATE_CODES[i.state]],
            "instance-status.status": lambda i: [self._status(i)[0][
                "Status"]],
            "system-status.status": lambda i: [self._status(i)[1][
                "Status"]],
            "instance-status.reachability": lambda i: [
                d["Status"] for d in self._status(i)[0]["Details"] or []],
            "system-status.reachability": lambda i: [
                d["Status"] for d in self._status(i)[1]["Details"] or []],
        })
        insts.sort(key=lambda i: i.launch)
        page, nxt = self._paginate(insts, p, 5, 1000,
                                   "DescribeInstanceStatus")
        out = []
        for inst in page:
            ist, sst = self._status(inst)
            out.append({"AvailabilityZone": inst.az, "InstanceId": inst.id,
                        "InstanceState": self._state(inst.state),
                        "InstanceStatus": ist, "SystemStatus": sst})
        return {"InstanceStatuses": out, "NextToken": nxt}

    def op_GetConsoleOutput(self, p, ctx):
        inst = self._get(self.instances, "i", p["InstanceId"])
        latest = bool(p.get("Latest"))
        if latest and not is_nitro(inst.type):
            # The reference says Latest is for Nitro types but not how
            # others refuse it: ec2sim's code and message are its own.
            raise ApiError("UnsupportedOperation",
                           f"The instance type {inst.type} does not "
                           f"support retrieving the latest console "
                           f"output.")
        if self._dry(p):
            return None
        now = self.now()
        out = {"InstanceId": inst.id, "Timestamp": now}
        if latest:
            boot = inst.boots[-1] if inst.boots else None
            up = boot is not None and inst.state == "running" and \
                now >= boot["start"] + getattr(inst, "boot", 0.0)
        else:
            # Buffered: what was posted console_lag after the last
            # boot. Until then nothing that helps: the unkind reading of
            # "posted shortly after an instance transition state" (the
            # last boot's keys are 64 KB back or not posted yet).
            boot = inst.boots[-1] if inst.boots else None
            lag = self._console_lag(boot) if boot is not None else 0.0
            if boot is not None and now < boot["start"] + lag:
                boot = None
            up = True
            if boot is not None:
                out["Timestamp"] = boot["start"] + lag
        if boot is not None:
            out["Output"] = base64.b64encode(
                self._console(inst, boot, up).encode()).decode()
        return out

    def _console_lag(self, boot):
        """One boot's console_lag: drawn once (every look at that boot
        agrees), again only when the setting changes."""
        spec = self.delays.get("console_lag", 0.0)
        if "lag" not in boot or boot.get("lag_spec") != spec:
            boot["lag_spec"] = spec
            boot["lag"] = self.delay("console_lag")
        return boot["lag"]

    def _console(self, inst, boot, up):
        """A boot's console; cloud-init's part once it has run (up)."""
        t = time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                          time.gmtime(boot["start"]))
        kernel = (
            "[    0.000000] Linux version 6.1.0-18-cloud-amd64 "
            "(debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC\n"
            "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz "
            "root=/dev/xvda1 ro console=tty0 console=ttyS0,115200\n"
            f"[    1.234567] EXT4-fs (xvda1): mounted filesystem\n"
            f"Cloud-init v. 22.4.2 running 'init' at {t}. Up 3.21 "
            f"seconds.\n"
            f"ci-info: | eth0 | True | {inst.ip} | 255.255.0.0 |\n")
        if not up:
            return kernel
        if not boot["keys"]:
            return kernel + (
                f"Cloud-init v. 22.4.2 running 'modules:final' at {t}. Up "
                f"5.02 seconds.\n"
                f"Cloud-init v. 22.4.2 finished at {t}. Datasource "
                f"DataSourceEc2Local.  Up 5.31 seconds\n")
        return kernel + self._console_keys(inst, t)

    def _console_keys(self, inst, t):
        blob = base64.b64decode(inst.console_pub.split()[1])
        fp = base64.b64encode(hashlib.sha256(blob).digest()).decode()
        fp = fp.rstrip("=")
        host = "ip-" + inst.ip.replace(".", "-")
        kt, kb = inst.console_pub.split()[:2]
        return (
            "Generating public/private ed25519 key pair.\n"
            f"Cloud-init v. 22.4.2 running 'modules:final' at {t}. Up "
            f"5.02 seconds.\n"
            "#############################################################\n"
            "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
            f"256 SHA256:{fp} root@{host} (ED25519)\n"
            "-----END SSH HOST KEY FINGERPRINTS-----\n"
            "#############################################################\n"
            "-----BEGIN SSH HOST KEY KEYS-----\n"
            f"{kt} {kb} root@{host}\n"
            "-----END SSH HOST KEY KEYS-----\n"
            f"Cloud-init v. 22.4.2 finished at {t}. Datasource "
            f"DataSourceEc2Local.  Up 5.31 seconds\n")

    # ---------------------------------------------------------------
    # volumes
    # ---------------------------------------------------------------
    def op_CreateVolume(self, p, ctx):
        az = p["AvailabilityZone"]
        if az not in self.azs:
            raise ApiError("InvalidParameterValue",
                           f"Invalid availability zone: [{az}]")
        snap = None
        if p.get("SnapshotId"):
            snap = self._get(self.snapshots, "snap", p["SnapshotId"])
            if snap.state != "completed":
                raise ApiError("IncorrectState",
                               f"Snapshot is in invalid state - "
                               f"{snap.state}")
        size = p.get("Size")
        if size is None and snap is None:
            raise ApiError("MissingParameter",
                           "The request must contain the parameter size or "
                           "snapshotId")
        if size is None:
            size = snap.size
        if snap is not None and size < snap.size:
            raise ApiError("InvalidParameterValue",
                           f"Volume of {size}GiB is too small; minimum is "
                           f"{snap.size}GiB.")
        if size < 1 or size > 16384:
            raise ApiError("InvalidParameterValue",
                           f"Volume of {size}GiB is out of range.")
        vtype = p.get("VolumeType", VOLUME_DEFAULT_TYPE)
        # Refused before anything else about capacity.
        volume_perf(vtype, size, p.get("Iops"), p.get("Throughput"))
        if self.azs[az].impaired:
            raise ApiError("InsufficientVolumeCapacity",
                           f"There is currently insufficient capacity to "
                           f"serve the request in {az}.")
        token = p.get("ClientToken")
        if token and ("vol", token) in self.client_tokens:
            return self._volume_out(
                self.volumes[self.client_tokens[("vol", token)][1][0]])
        if self._dry(p):
            return None
        vol = self._new_volume(new_id("vol"), az, size,
                               snap.id if snap else "",
                               snap.data if snap else "",
                               tag_specs(p, "volume"), "creating",
                               vtype, p.get("Iops"), p.get("Throughput"))
        if token:
            self.client_tokens[("vol", token)] = (None, [vol.id])
        self.after("volume_create", self._volume_created, vol.id)
        return self._volume_out(vol)

    def _volume_created(self, vid):
        v = self.volumes.get(vid)
        if v and v.state == "creating":
            v.state = "available"
            self.sim.event(f"volume {vid}: available")

    def op_DescribeVolumes(self, p, ctx):
        ids = p.get("VolumeIds")
        if ids and "MaxResults" in p:
            raise ApiError("InvalidParameterCombination",
                           "The parameter volumeSet cannot be used with the "
                           "parameter maxResults")
        vols = self._select(self.volumes, "vol", ids)
        vols = self._filter(vols, p.get("Filters"), {
            "volume-id": lambda v: [v.id],
            "status": lambda v: [v.state],
            "availability-zone": lambda v: [v.az],
            "size": lambda v: [v.size],
            "snapshot-id": lambda v: [v.snapshot],
            "volume-type": lambda v: [v.type],
            "attachment.instance-id": lambda v: (
                [v.att["instance"]] if v.att else []),
            "attachment.device": lambda v: (
                [v.att["device"]] if v.att else []),
            "attachment.status": lambda v: (
                [v.att["state"]] if v.att else []),
            "attachment.delete-on-termination": lambda v: (
                [str(v.att["dot"]).lower()] if v.att else []),
        })
        vols.sort(key=lambda v: v.created)
        page, nxt = self._paginate(vols, p, 5, 500, "DescribeVolumes")
        return {"Volumes": [self._volume_out(v) for v in page],
                "NextToken": nxt}

    def op_AttachVolume(self, p, ctx):
        vol = self._get(self.volumes, "vol", p["VolumeId"])
        inst = self._get(self.instances, "i", p["InstanceId"])
        dev = p["Device"]
        if not DEVICE_RE.match(dev):
            raise ApiError("InvalidParameterValue",
                           f"Value ({dev}) for parameter device is invalid. "
                           f"{dev} is not a valid EBS device name.")
        if vol.att:
            raise ApiError("VolumeInUse",
                           f"{vol.id} is already attached to an instance")
        if vol.state != "available":
            raise ApiError("IncorrectState",
                           f"{vol.id} is not 'available'.")
        if inst.state not in ("running", "stopped"):
            raise ApiError("IncorrectInstanceState",
                           f"Instance '{inst.id}' is not 'running'.")
        if vol.az != inst.az:
            raise ApiError("InvalidVolume.ZoneMismatch",
                           f"The volume '{vol.id}' is not in the same "
                           f"availability zone as instance '{inst.id}'")
        for other in self.volumes.values():
            if (other.att and other.att["instance"] == inst.id
                    and other.att["device"] == dev):
                raise ApiError("InvalidParameterValue",
                               f"Invalid value '{dev}' for unixDevice. "
                               f"Attachment point {dev} is already in use")
        if self._dry(p):
            return None
        vol.state = "in-use"
        self._attach(vol, inst, dev, "attaching", False)
        self.sim.event(f"volume {vol.id}: attaching to {inst.id} at {dev}")
        self.after("attach", self._attached, vol.id, inst.id)
        return self._att_out(vol)

    def _attached(self, vid, iid):
        v = self.volumes.get(vid)
        if v and v.att and v.att["instance"] == iid and \
                v.att["state"] == "attaching":
            v.att["state"] = "attached"
            self.sim.event(f"volume {vid}: attached to {iid}")
            self.kick()

    def op_DetachVolume(self, p, ctx):
        vol = self._get(self.volumes, "vol", p["VolumeId"])
        if not vol.att:
            raise ApiError("IncorrectState",
                           f"Volume '{vol.id}' is in the '{vol.state}' "
                           f"state.")
        if p.get("InstanceId"):
            self._get(self.instances, "i", p["InstanceId"])
            if p["InstanceId"] != vol.att["instance"]:
                raise ApiError("InvalidAttachment.NotFound",
                               f"Volume '{vol.id}' is not attached to "
                               f"instance '{p['InstanceId']}'")
        if p.get("Device") and p["Device"] != vol.att["device"]:
            raise ApiError("InvalidAttachment.NotFound",
                           f"Volume '{vol.id}' is not attached at "
                           f"'{p['Device']}'")
        inst = self.instances[vol.att["instance"]]
        if (vol.att["device"] == inst.root_device
                and inst.state not in ("stopped",)):
            raise ApiError("OperationNotPermitted",
                           f"Unable to detach root volume '{vol.id}' from "
                           f"instance '{inst.id}'")
        if self._dry(p):
            return None
        force = p.get("Force", False)
        if (vol.detach_busy and inst.state == "running" and not force):
            # The OS still uses the disk: AWS leaves it 'busy' until a
            # forced detach.
            vol.att["state"] = "busy"
            self.sim.event(f"volume {vol.id}: detach busy")
            return self._att_out(vol)
        if vol.detach_stuck and not force:
            # AWS volumes do get stuck in 'detaching' whatever the
            # instance's state: only a forced detach ends it.
            vol.att["state"] = "detaching"
            self.sim.event(f"volume {vol.id}: detach stuck")
            return self._att_out(vol)
        if vol.att["state"] in ("attached", "busy", "attaching") or force:
            vol.att["state"] = "detaching"
            self.sim.event(f"volume {vol.id}: detaching from {inst.id}")
            self.after("detach", self._detached, vol.id, inst.id)
        return self._att_out(vol)

    def _detached(self, vid, iid):
        v = self.volumes.get(vid)
        if v and v.att and v.att["instance"] == iid and \
                v.att["state"] == "detaching":
            v.att = None
            v.state = "available"
            self.sim.event(f"volume {vid}: detached from {iid}")

    # ---------------------------------------------------------------
    # snapshots and images
    # ---------------------------------------------------------------
    def op_CreateSnapshot(self, p, ctx):
        vol = self._get(self.volumes, "vol", p["VolumeId"])
        if vol.state == "creating":
            raise ApiError("IncorrectState",
                           f"Volume '{vol.id}' is in the 'creating' state.")
        if self._dry(p):
            return None
        s = self._new_snapshot(new_id("snap"), vol.id, vol.size, vol.data,
                               p.get("Description", ""),
                               tag_specs(p, "snapshot"), self.now(),
                               "pending")
        self.after("snapshot", self._snapshot_done, s.id)
        return self._snapshot_out(s)

    def _snapshot_done(self, sid):
        s = self.snapshots.get(sid)
        if s and s.state == "pending":
            s.state = "completed"
            self.sim.event(f"snapshot {sid}: completed")

    def op_DescribeSnapshots(self, p, ctx):
        ids = p.get("SnapshotIds")
        if ids and "MaxResults" in p:
            raise ApiError("InvalidParameterCombination",
                           "The parameter snapshotSet cannot be used with "
                           "the parameter maxResults")
        snaps = self._select(self.snapshots, "snap", ids)
        owners = p.get("OwnerIds")
        if owners:
            # "self" is the caller's account, not a wildcard.
            want = {self.account if o == "self" else o for o in owners}
            snaps = [s for s in snaps if s.owner in want]
        elif not ids:
            # Without an owner, every snapshot the caller may restore:
            # its own and every public one.
            snaps = [s for s in snaps
                     if s.owner == self.account or s.public]
        snaps = self._filter(snaps, p.get("Filters"), {
            "snapshot-id": lambda s: [s.id],
            "volume-id": lambda s: [s.volume],
            "status": lambda s: [s.state],
            "owner-id": lambda s: [s.owner],
            "description": lambda s: [s.description],
            "volume-size": lambda s: [s.size],
            "progress": lambda s: ["100%" if s.state == "completed"
                                   else "0%"],
        })
        snaps.sort(key=lambda s: s.start)
        page, nxt = self._paginate(snaps, p, 5, 1000, "DescribeSnapshots")
        return {"Snapshots": [self._snapshot_out(s) for s in page],
                "NextToken": nxt}

    def op_DeleteSnapshot(self, p, ctx):
        s = self._get(self.snapshots, "snap", p["SnapshotId"])
        for im in self.images.values():
            if im.state != "deregistered" and any(
                    m["snapshot"] == s.id for m in im.mappings):
                raise ApiError("InvalidSnapshot.InUse",
                               f"The snapshot {s.id} is currently in use "
                               f"by {im.id}")
        if self._dry(p):
            return None
        del self.snapshots[s.id]
        return {}

    def op_CreateImage(self, p, ctx):
        inst = self._get(self.instances, "i", p["InstanceId"])
        name = p["Name"]
        if not re.match(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$", name):
            raise ApiError("InvalidAMIName.Malformed",
                           f"AMI names must be between 3 and 128 "
                           f"characters long, and may contain letters, "
                           f"numbers, '(', ')', '.', '-', '/' and '_'")
        for im in self.images.values():
            if im.name == name and im.state != "deregistered":
                raise ApiError("InvalidAMIName.Duplicate",
                               f"AMI name {name} is already in use by AMI "
                               f"{im.id}")
        if inst.state not in ("running", "stopped"):
            raise ApiError("IncorrectInstanceState",
                           f"Instance '{inst.id}' is not in a state from "
                           f"which it can be imaged.")
        if self._dry(p):
            return None
        skip = {m.get("DeviceName") for m in p.get("BlockDeviceMappings", [])
                if "NoDevice" in m}
        if inst.root_device in skip:
            raise ApiError("InvalidBlockDeviceMapping",
                           "The root device cannot be removed")
        iid = new_id("ami")
        mappings = []
        for v in sorted(self.volumes.values(), key=lambda v: v.id):
            if (v.att and v.att["instance"] == inst.id
                    and v.att["device"] not in skip):
                s = self._new_snapshot(
                    new_id("snap"), v.id, v.size, v.data,
                    f"Created by CreateImage({inst.id}) for {iid}",
                    {}, self.now(), "pending")
                self.after("snapshot", self._snapshot_done, s.id)
                mappings.append({"device": v.att["device"],
                                 "snapshot": s.id, "size": v.size,
                                 "dot": v.att["dot"], "type": v.type,
                                 "iops": v.iops,
                                 "throughput": v.throughput})
        mappings.sort(key=lambda m: (m["device"] != inst.root_device,
                                     m["device"]))
        self.images[iid] = Obj(
            id=iid, name=name, description=p.get("Description", ""),
            state="pending", created=self.now(), owner=self.account,
            root_device=inst.root_device, mappings=mappings,
            tags=tag_specs(p, "image"),
            emit_keys=getattr(self.images.get(inst.image), "emit_keys",
                              True))
        self.sim.event(f"image {iid}: creating from {inst.id}")
        if inst.state == "running" and not p.get("NoReboot", False):
            # AWS reboots the instance for a consistent image: a short
            # outage the watchdog will see.
            reboot = self.delay("reboot")
            inst.reboot_until = self.now() + reboot
            self.sim.event(f"instance {inst.id}: rebooting for {iid}")
            self.kick()
            self.sched.after(reboot + 0.01, self.kick)
        self.after("image", self._image_done, iid)
        return {"ImageId": iid}

    def _image_done(self, iid):
        im = self.images.get(iid)
        if im and im.state == "pending":
            im.state = "available"
            self.sim.event(f"image {iid}: available")

    def op_DescribeImages(self, p, ctx):
        ids = p.get("ImageIds")
        ims = [i for i in self._select(self.images, "ami", ids)
               if i.state != "deregistered" or ids]
        owners = p.get("Owners")
        if owners:
            want = {self.account if o == "self" else o for o in owners}
            ims = [i for i in ims if i.owner in want]
        ims = self._filter(ims, p.get("Filters"), {
            "image-id": lambda i: [i.id],
            "name": lambda i: [i.name],
            "state": lambda i: [i.state],
            "owner-id": lambda i: [i.owner],
            "description": lambda i: [i.description],
            "block-device-mapping.snapshot-id": lambda i: [
                m["snapshot"] for m in i.mappings],
        })
        ims.sort(key=lambda i: i.created)
        return {"Images": [self._image_out(i) for i in ims]}

    def op_DeregisterImage(self, p, ctx):
        im = self._get(self.images, "ami", p["ImageId"])
        if im.state == "deregistered":
            raise not_found("ami", [im.id])
        if self._dry(p):
            return None
        im.state = "deregistered"
        return {}

    # ---------------------------------------------------------------
    # addresses
    # ---------------------------------------------------------------
    def op_AllocateAddress(self, p, ctx):
        if p.get("Domain", "vpc") != "vpc":
            raise ApiError("InvalidParameterValue",
                           "Only the 'vpc' domain is simulated")
        if self._dry(p):
            return None
        a = self._new_address(tags=tag_specs(p, "elastic-ip"))
        return {"PublicIp": a.ip, "AllocationId": a.id, "Domain": "vpc",
                "PublicIpv4Pool": "amazon",
                "NetworkBorderGroup": self.region}

    def _address_by(self, alloc=None, ip=None):
        if alloc:
            return self._get(self.addresses, "eipalloc", alloc)
        for a in self.addresses.values():
            if a.ip == ip:
                return a
        raise ApiError("InvalidAddress.NotFound",
                       f"Address '{ip}' not found.")

    def op_AssociateAddress(self, p, ctx):
        if not p.get("AllocationId") and not p.get("PublicIp"):
            raise ApiError("MissingParameter",
                           "Either public IP or allocation id must be "
                           "specified")
        if not p.get("InstanceId"):
            raise ApiError("MissingParameter",
                           "The request must contain the parameter "
                           "InstanceId (network interfaces are not "
                           "simulated)")
        addr = self._address_by(p.get("AllocationId"), p.get("PublicIp"))
        inst = self._get(self.instances, "i", p["InstanceId"])
        if inst.state not in ("running", "stopped", "pending"):
            raise ApiError("IncorrectInstanceState",
                           f"The instance '{inst.id}' is not in a valid "
                           f"state for this operation.")
        if (addr.instance and addr.instance != inst.id
                and not p.get("AllowReassociation")):
            raise ApiError("Resource.AlreadyAssociated",
                           f"resource {addr.id} is already associated "
                           f"with associate-id {addr.assoc}")
        if self._dry(p):
            return None
        if addr.instance == inst.id:
            return {"AssociationId": addr.assoc}
        self.sim.event(f"address {addr.ip}: associated with {inst.id}")
        self._associate(addr, inst)
        return {"AssociationId": addr.assoc}

    def op_DisassociateAddress(self, p, ctx):
        if p.get("AssociationId"):
            check_id("eipassoc", p["AssociationId"])
            addr = next((a for a in self.addresses.values()
                         if a.assoc == p["AssociationId"]), None)
            if addr is None:
                raise not_found("eipassoc", [p["AssociationId"]])
        elif p.get("PublicIp"):
            addr = self._address_by(ip=p["PublicIp"])
        else:
            raise ApiError("MissingParameter",
                           "The request must contain the parameter "
                           "AssociationId")
        if self._dry(p):
            return None
        if addr.instance:
            self.sim.event(f"address {addr.ip}: disassociated")
            self._disassociate(addr)
        return {}

    def op_DescribeAddresses(self, p, ctx):
        addrs = self._select(self.addresses, "eipalloc",
                             p.get("AllocationIds"))
        if p.get("PublicIps"):
            known = {a.ip for a in addrs}
            for ip in p["PublicIps"]:
                if ip not in known:
                    raise ApiError("InvalidAddress.NotFound",
                                   f"Address '{ip}' not found.")
            addrs = [a for a in addrs if a.ip in p["PublicIps"]]
        addrs = self._filter(addrs, p.get("Filters"), {
            "allocation-id": lambda a: [a.id],
            "association-id": lambda a: [a.assoc] if a.assoc else [],
            "domain": lambda a: ["vpc"],
            "instance-id": lambda a: [a.instance] if a.instance else [],
            "public-ip": lambda a: [a.ip],
            "private-ip-address": lambda a: (
                [self.instances[a.instance].ip] if a.instance else []),
        })
        return {"Addresses": [self._address_out(a) for a in addrs]}

    # ---------------------------------------------------------------
    # misc
    # ---------------------------------------------------------------
    def op_CreateTags(self, p, ctx):
        targets = []
        for rid in p["Resources"]:
            kind = rid.split("-")[0]
            table = {"i": self.instances, "vol": self.volumes,
                     "snap": self.snapshots, "ami": self.images,
                     "eipalloc": self.addresses}.get(kind)
            if table is None:
                raise ApiError("InvalidID",
                               f"The ID '{rid}' is not valid")
            targets.append(self._get(table, kind, rid))
        for t in p["Tags"]:
            if t["Key"].startswith("aws:"):
                raise ApiError("InvalidParameterValue",
                               "Tag keys starting with 'aws:' are "
                               "reserved for internal use")
        if self._dry(p):
            return None
        for o in targets:
            for t in p["Tags"]:
                o.tags[t["Key"]] = t.get("Value", "")
        return {}

    def op_DescribeAvailabilityZones(self, p, ctx):
        zones = list(self.azs.values())
        names = p.get("ZoneNames")
        if names:
            for n in names:
                if n not in self.azs:
                    raise ApiError("InvalidParameterValue",
                                   f"The zone '{n}' does not exist.")
            zones = [z for z in zones if z.name in names]
        zones = self._filter(zones, p.get("Filters"), {
            "zone-name": lambda z: [z.name],
            "zone-id": lambda z: [z.zone_id],
            "state": lambda z: [z.state],
            "region-name": lambda z: [self.region],
            "zone-type": lambda z: ["availability-zone"],
        }) if p.get("Filters") else zones
        out = []
        for z in zones:
            out.append({
                "State": z.state,
                "OptInStatus": "opt-in-not-required",
                "Messages": ([{"Message": AZ_MESSAGES[z.state]}]
                             if z.state in AZ_MESSAGES else []),
                "RegionName": self.region, "ZoneName": z.name,
                "ZoneId": z.zone_id, "GroupName": self.region,
                "NetworkBorderGroup": self.region,
                "ZoneType": "availability-zone"})
        return {"AvailabilityZones": out}

    # _filter needs .tags on every object
    # ---------------------------------------------------------------
    # control API views
    # ---------------------------------------------------------------
    def view_instance(self, inst):
        ssh, http = self.instance_desired(inst)
        return {"id": inst.id, "state": inst.state, "az": inst.az,
                "ip": inst.ip, "subnet": inst.subnet, "image": inst.image,
                "type": inst.type, "tags": inst.tags,
                "faults": sorted(inst.faults),
                "stuck_stopping": inst.stuck_stopping,
                "ssh": ssh, "http": http,
                "host_key": inst.hostkey_pub,
                "boots": len(inst.boots),
                "volumes": {v.att["device"]: v.id
                            for v in self.volumes.values()
                            if v.att and v.att["instance"] == inst.id},
                "eip": next((a.ip for a in self.addresses.values()
                             if a.instance == inst.id), None)}

    def view_volume(self, v):
        return {"id": v.id, "state": v.state, "az": v.az, "size": v.size,
                "snapshot": v.snapshot, "data": v.data, "tags": v.tags,
                "type": v.type, "iops": v.iops,
                "throughput": v.throughput,
                "detach_busy": v.detach_busy,
                "detach_stuck": v.detach_stuck,
                "attachment": copy.deepcopy(v.att)}

    def view_address(self, a):
        return {"allocation_id": a.id, "ip": a.ip,
                "association_id": a.assoc, "instance": a.instance,
                "routed_to": a.route, "tags": a.tags}

    def view(self):
        return {
            "region": self.region, "account": self.account,
            "delays": self.delays,
            "availability_zones": {z.name: {"impaired": z.impaired,
                                            "state": z.state}
                                   for z in self.azs.values()},
            "instances": {i.id: self.view_instance(i)
                          for i in self.instances.values()},
            "volumes": {v.id: self.view_volume(v)
                        for v in self.volumes.values()},
            "snapshots": {s.id: {"id": s.id, "state": s.state,
                                 "volume": s.volume, "data": s.data,
                                 "size": s.size, "tags": s.tags,
                                 "description": s.description,
                                 "owner": s.owner, "public": s.public}
                          for s in self.snapshots.values()},
            "images": {i.id: {"id": i.id, "name": i.name,
                              "state": i.state, "tags": i.tags,
                              "snapshots": [m["snapshot"]
                                            for m in i.mappings]}
                       for i in self.images.values()},
            "addresses": {a.id: self.view_address(a)
                          for a in self.addresses.values()},
        }
