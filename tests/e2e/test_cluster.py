"""The cluster member (src/cluster.c, issue 15) against a real 3-member
etcd, three members at a time driven by tests/tools/clustermember: one
leader, another when it dies, a stopped leader fenced out of the journal,
failover only on a quorum of DOWN verdicts, and etcd losing members."""
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from etcdcluster import EtcdCluster
from fodtest import BUILD, SANITIZER_RX

MEMBER = os.path.join(BUILD, "clustermember")
ETCDCALL = os.path.join(BUILD, "etcdcall")
WAIT = 60           # seconds: generous, for a loaded machine (and ASan)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=3) as c:
        yield c


class Member:
    """One clustermember process; its stdout lines are collected by a
    thread so that a test waits on them."""

    def __init__(self, endpoints, name, prefix, ttl=3, quorum=2,
                 services=("web", "db")):
        self.name = name
        args = [MEMBER, "--name", name, "--prefix", prefix,
                "--ttl", str(ttl), "--quorum", str(quorum),
                "--timeout", "2", "--member", "a", "--member", "b",
                "--member", "c"]
        for e in endpoints:
            args += ["--endpoint", e]
        self.p = subprocess.Popen(args + list(services),
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.lines = []
        self.err = []
        self.cv = threading.Condition()
        self.t = [threading.Thread(target=self._read, args=(s, l),
                                   daemon=True)
                  for s, l in ((self.p.stdout, self.lines),
                               (self.p.stderr, self.err))]
        for t in self.t:
            t.start()

    def _read(self, stream, into):
        for line in stream:
            with self.cv:
                into.append(line.rstrip("\n"))
                self.cv.notify_all()

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait(self, pred, start=0, timeout=WAIT, what=""):
        """The first line from index start that pred accepts."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for line in self.lines[start:]:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None and \
                        not self.t[0].is_alive():
                    raise AssertionError(
                        f"{self.name}: no {what or 'line'}: "
                        + "\n".join(self.lines[-40:] + self.err[-20:]))
                self.cv.wait(min(left, 0.5))

    def ask(self, cmd, reply, timeout=WAIT):
        """Sends a command; its answer (the first line starting with
        reply after it was sent)."""
        n = len(self.lines)
        self.send(cmd)
        return self.wait(lambda l: l.startswith(reply), n, timeout,
                         f"answer to {cmd!r}")

    def status(self):
        return json.loads(self.ask("statusjson", "status ")[7:])

    def mayact(self):
        return self.ask("mayact", "mayact ").startswith("mayact 1")

    def events(self, name, start=0):
        with self.cv:
            return [l for l in self.lines[start:]
                    if l.startswith(f"event event={name} ")]

    def stop(self):
        if self.p.poll() is None:
            try:
                self.send("quit")
            except BrokenPipeError:
                pass
            try:
                self.p.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for t in self.t:
            t.join(timeout=10)
        if self.p.returncode not in (-signal.SIGKILL,):
            assert self.p.returncode == 0, (self.p.returncode, self.err)
        bad = [l for l in self.err if SANITIZER_RX.search(l)]
        assert not bad, "\n".join(self.err)


@pytest.fixture
def members(etcd):
    """A fresh prefix, and a maker of members that are stopped (and
    checked for a clean exit) after the test."""
    prefix = "/t-" + uuid.uuid4().hex[:8]
    made = []

    def make(name, **kw):
        m = Member(etcd.endpoints, name, prefix, **kw)
        made.append(m)
        return m

    make.prefix = prefix
    yield make
    for m in made:
        if m.p.poll() is None:
            try:
                os.kill(m.p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    for m in made:
        m.stop()


def etcd_get(etcd, key, prefix=False):
    args = [ETCDCALL, "--timeout", "10"]
    for e in etcd.endpoints:
        args += ["--endpoint", e]
    args += ["getp" if prefix else "get", key]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return {kv["key"]: kv["value"] for kv in json.loads(p.stdout)["kvs"]}


def until(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(m):
    """How many members m sees alive."""
    return sum(x["alive"] for x in m.status()["members"])


def cluster_verdict_line(m):
    """The quorum verdict on web as the text status says it."""
    n = len(m.lines)
    m.send("status")
    line = m.wait(lambda l: l.startswith("service web: "), n,
                  what="status text")
    return line.split()[4].rstrip(",")


def leader_of(ms):
    """Waits until exactly one member says it leads; that member."""
    def one():
        leading = [m for m in ms if m.p.poll() is None and
                   any(l == "leader 1" for l in m.lines) and
                   m.status()["leading"]]
        return leading[0] if len(leading) == 1 else None
    return until(one, what="exactly one leader")


def test_one_leader_then_another_when_it_dies(members, etcd):
    ms = [members(n) for n in ("a", "b", "c")]
    lead = leader_of(ms)
    assert lead.mayact()
    others = [m for m in ms if m is not lead]
    for m in others:
        assert not m.mayact()
        # every member knows who leads, and everyone's lease
        until(lambda: m.status()["leader"] == lead.name, what="leader")
        until(lambda: alive(m) == 3, what="members")
    assert "not the leader: " + lead.name in others[0].ask("mayact",
                                                            "mayact ")
    token = lead.status()["token"]
    assert token > 0 and all(m.status()["token"] == token for m in others)

    marks = [len(m.lines) for m in others]
    lead.p.kill()
    lead.p.wait()
    new = until(lambda: next((m for m, k in zip(others, marks)
                              if "leader 1" in m.lines[k:]), None),
                what="a new leader")
    assert new.mayact()
    other = next(m for m in others if m is not new)
    other.wait(lambda l: l.startswith("event event=cluster_member_left ")
               and f"member={lead.name}" in l, what="member_left")
    until(lambda: other.status()["leader"] == new.name, what="new leader")
    st = other.status()
    assert st["token"] > token, "a new leader, a greater fencing token"
    assert {x["name"]: x["alive"] for x in st["members"]} == {
        "a": True, "b": True, "c": True, lead.name: False}
    # The new leader's journal writes land, fenced by its leadership.
    n = len(new.lines)
    assert new.ask("save web step=fence_launch", "save web ") == \
        "save web 1"
    new.wait(lambda l: l == "journal web 1", n, what="journal ok")
    assert new.ask("save web step=fence_launch", "save web ") == \
        "save web 0", "an identical record is not written twice"
    got = etcd_get(etcd, members.prefix + "/acting/web")
    assert got == {members.prefix + "/acting/web": new.name}


def test_stopped_leader_cannot_act_nor_write(members, etcd):
    ms = [members(n) for n in ("a", "b", "c")]
    lead = leader_of(ms)
    others = [m for m in ms if m is not lead]
    assert all(m.ask("load web", "load web ") == "load web 1"
               for m in ms), "no journal yet"
    n = len(lead.lines)
    assert lead.ask("save web step=launch", "save web ") == "save web 1"
    lead.wait(lambda l: l == "journal web 1", n, what="journal ok")
    marks = [len(m.lines) for m in others]
    os.kill(lead.p.pid, signal.SIGSTOP)
    try:
        new = until(lambda: next((m for m, k in zip(others, marks)
                                  if "leader 1" in m.lines[k:]), None),
                    what="a new leader while the old one is stopped")
        # It takes over where the old leader's journal stood.
        assert new.ask("load web", "load web ") == \
            f"load web 0 step=launch writer={lead.name}"
        n = len(new.lines)
        assert new.ask("save web step=new_leader", "save web ") == \
            "save web 1"
        new.wait(lambda l: l == "journal web 1", n, what="journal ok")
        # Queued while stopped: read the moment it runs again.
        n = len(lead.lines)
        lead.send("mayact")
        lead.send("save web step=fence_launch")
    finally:
        os.kill(lead.p.pid, signal.SIGCONT)
    ans = lead.wait(lambda l: l.startswith("mayact "), n, what="mayact")
    assert ans.startswith("mayact 0"), ans
    save = lead.wait(lambda l: l.startswith("save web "), n, what="save")
    if save == "save web 1":
        # It believed it led: etcd refused the write (the fence).
        lead.wait(lambda l: l == "journal web 0", n, what="refused")
    else:
        assert save.startswith("save web -1"), save
    lead.wait(lambda l: l == "leader 0", what="leader 0")
    assert lead.events("cluster_leader_lost") and \
        lead.events("cluster_lease_lost")
    got = etcd_get(etcd, members.prefix + "/", prefix=True)
    assert got[members.prefix + "/acting/web"] == new.name
    assert "step=new_leader" in got[members.prefix + "/journal/web"]
    # It comes back as a follower of the new leader.
    until(lambda: lead.status()["leader"] == new.name
          and alive(lead) == 3, what="rejoined")
    assert not lead.mayact()


def test_quorum_of_down_verdicts(members, etcd):
    ms = [members(n) for n in ("a", "b", "c")]
    lead = leader_of(ms)
    for m in ms:
        until(lambda: alive(m) == 3, what="members")
    a, b, c = ms
    for m in ms:
        m.send("verdict web healthy")
    for m in ms:
        m.wait(lambda l: l == "verdict web unknown healthy",
               what="healthy")
        # every member sees every member's verdict before it changes
        until(lambda: m.status()["services"][0]["verdicts"] ==
              {"a": "healthy", "b": "healthy", "c": "healthy"},
              what="the verdicts published")
    n = len(lead.lines)
    a.send("verdict web down")
    split = lead.wait(
        lambda l: l.startswith("event event=cluster_verdict_split "),
        n, what="verdict_split")
    assert "down=a " in split and "quorum=2" in split, split
    assert "up=b,c " in split or "up=c,b " in split, split
    assert "service=web" in split
    for m in ms:
        st = m.status()
        assert st["services"][0]["verdict"] == "healthy", (m.name, st)
        assert cluster_verdict_line(m) == "healthy"
    # A second DOWN makes the quorum: every member hears it.
    marks = [len(m.lines) for m in ms]
    b.send("verdict web down")
    for m, k in zip(ms, marks):
        m.wait(lambda l: l == "verdict web healthy down", k,
               what="quorum down")
    key = members.prefix + "/verdicts/web/"
    assert etcd_get(etcd, key, prefix=True) == {
        key + "a": "down", key + "b": "down", key + "c": "healthy"}
    # A member that dies takes its verdicts with it (its lease ends).
    victim = b if b is not lead else a
    rest = [m for m in ms if m is not victim]
    marks = [len(m.lines) for m in rest]
    victim.p.kill()
    victim.p.wait()
    until(lambda: key + victim.name not in etcd_get(etcd, key, True),
          what="the dead member's verdict gone")
    for m, k in zip(rest, marks):
        m.wait(lambda l: l == "verdict web down healthy", k,
               what="quorum lost its DOWN")
    # One live member of a quorum of two: it says so, once.
    alone = lead
    mark = len(alone.lines)
    assert not alone.status()["quorum_lost"]
    gone = next(m for m in rest if m is not lead)
    gone.p.kill()
    gone.p.wait()
    line = alone.wait(lambda l: l.startswith(
        "event event=cluster_quorum_lost "), mark, what="quorum_lost")
    assert 'reason="1 live member, quorum is 2"' in line, line
    until(lambda: alone.status()["quorum_lost"], what="status says lost")
    assert len(alone.events("cluster_quorum_lost", mark)) == 1


def etcd_follower(etcd):
    """The index of an etcd member that is not raft's leader: stopping
    it calls no election, which would stall every call for seconds."""
    ids = []
    for e in etcd.endpoints:
        req = urllib.request.Request(e + "/v3/maintenance/status",
                                     data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            st = json.load(r)
        ids.append((st["header"]["member_id"], st["leader"]))
    return next(i for i, (me, lead) in enumerate(ids) if me != lead)


def test_etcd_losing_members(members, etcd):
    ms = [members(n, ttl=4) for n in ("a", "b", "c")]
    lead = leader_of(ms)
    first = etcd_follower(etcd)
    second = next(i for i in range(3) if i != first)
    try:
        etcd.stop(first)
        # Leadership holds with two of three etcd members: keepalives
        # and fenced journal writes go on.
        for step in ("one", "two", "three"):
            n = len(lead.lines)
            assert lead.ask(f"save web step={step}", "save web ") == \
                "save web 1"
            lead.wait(lambda l: l == "journal web 1", n, what="journal")
        assert lead.mayact()
        assert not any(l == "leader 0" for l in lead.lines)
        assert not lead.events("cluster_lease_lost")

        marks = [len(m.lines) for m in ms]
        etcd.stop(second)
        lead.wait(lambda l: l == "leader 0", marks[ms.index(lead)],
                  what="leader 0 without etcd quorum")
        assert not lead.mayact()
        for m, k in zip(ms, marks):
            m.wait(lambda l: l.startswith(
                "event event=cluster_quorum_lost "), k, what="quorum_lost")
        n = len(lead.lines)
        assert lead.ask("save web step=four", "save web ").startswith(
            "save web -1")
    finally:
        etcd.start(first)
        etcd.start(second)
        etcd.wait_healthy()
    new = leader_of(ms)
    for m, k in zip(ms, marks):
        m.wait(lambda l: l.startswith("event event=cluster_quorum_back "),
               k, what="quorum_back")
    n = len(new.lines)
    assert new.ask("save web step=five", "save web ") == "save web 1"
    new.wait(lambda l: l == "journal web 1", n, what="journal")
