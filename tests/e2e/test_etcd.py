"""The etcd client (src/etcd.c) against a real 3-member etcd cluster
(Debian's etcd-server), driven by tests/tools/etcdcall: what the cluster
mode of issue 15 will build on. Keys and values, a transaction fenced by
a key's mod_revision, leases that expire or are kept alive, a member
down, and endpoints that are not etcd at all."""
import json
import os
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etcdcluster import EtcdCluster, free_ports
from fodtest import BUILD
from servers import Blackhole

ETCDCALL = os.path.join(BUILD, "etcdcall")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=3) as c:
        yield c


def etcdcall(endpoints, *ops, timeout=20, check=True):
    """Runs the operations (lists of words) in one etcdcall; the result
    lines, and the exit status."""
    args = [ETCDCALL, "--timeout", str(timeout)]
    for e in endpoints:
        args += ["--endpoint", e]
    for i, op in enumerate(ops):
        args += ([","] if i else []) + [str(w) for w in op]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    # A signal (a crash) is never an acceptable way to fail.
    assert p.returncode in (0, 1), (p.returncode, p.stderr)
    res = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(res) == len(ops), (p.stdout, p.stderr)
    if check:
        assert p.returncode == 0, p.stdout
    return res


def kvs(res):
    return {kv["key"]: kv["value"] for kv in res["kvs"]}


def test_put_get_prefix_delete(cluster):
    ep = cluster.endpoints
    r = etcdcall(ep, ["put", "kv/a", "1"], ["put", "kv/b", "two"],
                 ["put", "kvz", "other"], ["get", "kv/a"],
                 ["getp", "kv/"], ["delp", "kv/"], ["getp", "kv/"],
                 ["get", "kvz"], ["del", "kvz"], ["get", "kvz"])
    assert all(x["status"] == "ok" for x in r)
    assert kvs(r[3]) == {"kv/a": "1"}
    assert r[3]["kvs"][0]["version"] == 1
    # The prefix is kv/, not "kv": kvz stays out of it.
    assert kvs(r[4]) == {"kv/a": "1", "kv/b": "two"}
    assert r[5]["deleted"] == 2
    assert r[6]["kvs"] == [] and r[6]["count"] == 0
    assert kvs(r[7]) == {"kvz": "other"}
    assert r[8]["deleted"] == 1 and r[9]["kvs"] == []
    # Each write moved the store's revision on.
    assert r[1]["revision"] == r[0]["revision"] + 1


def fenced_write(rev, value):
    """The fencing of issue 15: write the journal only while the leader
    key is the one this writer created (its mod_revision unchanged);
    else read who leads now."""
    return ["txn", json.dumps({
        "compare": [{"key": "fence/leader", "target": "mod",
                     "result": "=", "n": rev}],
        "success": [{"put": "fence/journal", "value": value}],
        "failure": [{"get": "fence/leader"}]})]


def test_txn_holds_only_while_the_fencing_compare_holds(cluster):
    ep = cluster.endpoints
    (lead,) = etcdcall(ep, ["put", "fence/leader", "member-a"])
    rev = lead["revision"]
    r = etcdcall(ep, fenced_write(rev, "step 1"), ["get", "fence/journal"])
    assert r[0]["succeeded"] is True
    assert kvs(r[1]) == {"fence/journal": "step 1"}
    # Another member takes the lead: the old one's token is stale.
    r = etcdcall(ep, ["put", "fence/leader", "member-b"],
                 fenced_write(rev, "step 2 by the deposed"),
                 ["get", "fence/journal"])
    assert r[1]["succeeded"] is False
    assert kvs(r[1]) == {"fence/leader": "member-b"}
    assert kvs(r[2]) == {"fence/journal": "step 1"}
    # And the new leader's token works.
    r = etcdcall(ep, fenced_write(r[0]["revision"], "step 2"),
                 ["get", "fence/journal"])
    assert r[0]["succeeded"] is True
    assert kvs(r[1]) == {"fence/journal": "step 2"}


def test_txn_compares_value_version_and_create_revision(cluster):
    ep = cluster.endpoints
    (p,) = etcdcall(ep, ["put", "cmp/k", "v1"])

    def txn(cmp):
        return ["txn", json.dumps({
            "compare": [dict(key="cmp/k", **cmp)],
            "success": [{"put": "cmp/ok", "value": "yes"}],
            "failure": [{"del": "cmp/ok"}]})]
    r = etcdcall(ep, txn({"target": "value", "result": "=",
                          "value": "v1"}),
                 txn({"target": "value", "result": "!=", "value": "v1"}),
                 txn({"target": "version", "result": ">", "n": 0}),
                 txn({"target": "create", "result": "=",
                      "n": p["revision"]}),
                 txn({"target": "create", "result": "<",
                      "n": p["revision"]}),
                 # A key that does not exist has create_revision 0:
                 # "create only if absent".
                 ["txn", json.dumps({
                     "compare": [{"key": "cmp/none", "target": "create",
                                  "result": "=", "n": 0}],
                     "success": [{"put": "cmp/none", "value": "made"}],
                     "failure": []})],
                 ["get", "cmp/none"])
    assert [x["succeeded"] for x in r[:6]] == [True, False, True, True,
                                               False, True]
    assert r[1]["deleted"] == 1
    assert kvs(r[6]) == {"cmp/none": "made"}


def test_lease_key_goes_when_not_kept_alive_and_stays_when_kept(cluster):
    ep = cluster.endpoints
    r = etcdcall(ep, ["grant", 3], ["put", "lease/dropped", "x", "@"],
                 ["get", "lease/dropped"])
    assert r[0]["ttl"] >= 3
    assert r[2]["kvs"][0]["lease"] == r[0]["lease"]
    # Kept alive every second for twice its TTL of 5 s.
    ops = [["grant", 5], ["put", "lease/kept", "y", "@"]]
    for _ in range(10):
        ops += [["sleep", 1], ["keepalive", "@"]]
    ops.append(["get", "lease/kept"])
    r = etcdcall(ep, *ops, timeout=20)
    assert all(x["ttl"] == 5 for x in r if x["op"] == "keepalive")
    assert kvs(r[-1]) == {"lease/kept": "y"}
    # The other one was never kept alive: etcd has dropped it by now
    # (it is given time, not a deadline: etcd expires it on its clock).
    for _ in range(60):
        (g,) = etcdcall(ep, ["get", "lease/dropped"])
        if not g["kvs"]:
            break
        time.sleep(0.5)
    assert g["kvs"] == []
    # Revoked, the kept one goes at once; its keepalive then says so.
    r = etcdcall(ep, ["revoke", r[0]["lease"]], ["get", "lease/kept"],
                 ["keepalive", r[0]["lease"]], check=False)
    assert r[0]["status"] == "ok" and r[1]["kvs"] == []
    assert r[2]["status"] == "nolease"
    assert "expired or does not exist" in r[2]["error"]


def test_etcd_refusal_is_an_error_with_its_code(cluster):
    (r,) = etcdcall(cluster.endpoints, ["put", "k", "v", "12345"],
                    check=False)
    assert r["status"] == "refused"
    assert r["code"] == 5 and "lease not found" in r["error"]
    assert r["endpoint"] in cluster.endpoints


def test_one_member_of_three_down_the_client_goes_on(cluster):
    ep = cluster.endpoints
    cluster.stop(0)
    try:
        # The stopped member first: every call goes on to another.
        r = etcdcall(ep, ["put", "down/k", "v"], ["get", "down/k"],
                     ["grant", 10], ["keepalive", "@"],
                     ["txn", json.dumps({"compare": [], "success": [
                         {"get": "down/k"}], "failure": []})])
        assert all(x["status"] == "ok" for x in r)
        assert all(x["endpoint"] in ep[1:] for x in r)
        assert kvs(r[1]) == {"down/k": "v"}
        assert kvs(r[4]) == {"down/k": "v"}
    finally:
        cluster.start(0)
        cluster.wait_healthy()
    (g,) = etcdcall([ep[0]], ["get", "down/k"])
    assert kvs(g) == {"down/k": "v"}


class Foreign(BaseHTTPRequestHandler):
    """An HTTP server that is not etcd: HTML, or JSON of another kind."""
    body = b"<html>nginx welcomes you</html>"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


class ForeignJson(Foreign):
    body = b'{"kvs": "nope", "header": 7}'


@pytest.fixture
def foreign():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h)
               for h in (Foreign, ForeignJson)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


def test_foreign_server_is_a_clear_error_and_others_are_tried(cluster,
                                                             foreign):
    html, js = foreign
    r = etcdcall([html], ["get", "k"], ["put", "k", "v"], check=False)
    for x in r:
        # Not etcd, so nothing was applied there: unavailable, with the
        # endpoint and what was wrong.
        assert x["status"] == "unavailable"
        assert html in x["error"] and "not a JSON reply" in x["error"]
    (x,) = etcdcall([js], ["get", "k"], check=False)
    assert x["status"] == "unavailable"
    assert js in x["error"] and "header" in x["error"]
    # Among real members, the foreign ones are passed by.
    r = etcdcall([html, js, cluster.endpoints[1]], ["put", "f/k", "v"],
                 ["get", "f/k"])
    assert kvs(r[1]) == {"f/k": "v"}
    assert r[0]["endpoint"] == cluster.endpoints[1]


def test_no_endpoint_answers_names_each_one():
    dead = [f"http://127.0.0.1:{p}" for p in free_ports(2)]
    (x,) = etcdcall(dead, ["get", "k"], timeout=10, check=False)
    assert x["status"] == "unavailable"
    assert all(d in x["error"] for d in dead)
    assert "onnect" in x["error"]


def ca_signed(d, name, ca=None, san=None):
    """An EC certificate and key made with the openssl CLI: the CA's
    own when ca is None, else signed by ca (a (cert, key) pair)."""
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", cert, "-days", "2", "-subj", "/CN=" + name]
    if ca is None:
        args += ["-addext", "basicConstraints=critical,CA:TRUE"]
    else:
        args += ["-CA", ca[0], "-CAkey", ca[1], "-addext",
                 "extendedKeyUsage=serverAuth,clientAuth"]
    if san:
        args += ["-addext", "subjectAltName=" + san]
    subprocess.run(args, check=True, capture_output=True)
    return cert, key


def test_tls_with_client_certificate(tmp_path):
    d = str(tmp_path)
    ca = ca_signed(d, "ca")
    server = ca_signed(d, "etcd", ca, "IP:127.0.0.1")
    client = ca_signed(d, "member-a", ca)
    other_ca = ca_signed(d, "other-ca")
    tls = {"ca": ca[0], "cert": server[0], "key": server[1],
           "client_cert": client[0], "client_key": client[1]}
    with EtcdCluster(tmp_path, size=1, tls=tls) as c:
        ep = c.endpoints

        def call(*opts):
            args = [ETCDCALL, "--timeout", "20", "--endpoint", ep[0]]
            args += list(opts) + ["put", "tls/k", "v", ",",
                                  "get", "tls/k"]
            p = subprocess.run(args, capture_output=True, text=True,
                               timeout=120)
            assert p.returncode in (0, 1), p.stderr
            return [json.loads(x) for x in p.stdout.splitlines()]
        r = call("--cacert", ca[0], "--cert", client[0], "--key", client[1])
        assert [x["status"] for x in r] == ["ok", "ok"]
        assert kvs(r[1]) == {"tls/k": "v"}
        # No client certificate: etcd will not talk. (With TLS 1.3 the
        # refusal may come after the request went out: a write can then
        # only be "unknown"; the read is plainly unavailable.)
        r = call("--cacert", ca[0])
        assert r[0]["status"] in ("unavailable", "unknown")
        assert r[1]["status"] == "unavailable" and ep[0] in r[1]["error"]
        # A server whose certificate no trusted CA signed is not etcd.
        r = call("--cacert", other_ca[0], "--cert", client[0], "--key",
                 client[1])
        assert r[0]["status"] == "unavailable"
        assert "certificate" in r[0]["error"].lower()


def watch_lines(endpoints, *ops, timeout=20):
    """etcdcall's lines, the watch's apart: (watch lines, other lines)."""
    args = [ETCDCALL, "--timeout", str(timeout)]
    for e in endpoints:
        args += ["--endpoint", e]
    for i, op in enumerate(ops):
        args += ([","] if i else []) + [str(w) for w in op]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return ([x for x in lines if x["op"] == "watch"],
            [x for x in lines if x["op"] != "watch"])


def events(lines):
    return [(e["type"], e["key"], e["value"]) for x in lines
            for e in x["events"]]


def test_watch_sees_each_change_of_a_prefix(cluster):
    ep = cluster.endpoints
    w, r = watch_lines(ep, ["watchp", "w/", 0, 3], ["put", "w/a", "1"],
                       ["put", "wz", "not in prefix"], ["put", "w/b", "2"],
                       ["del", "w/a"])
    assert w[0]["created"] and w[0]["status"] == "ok"
    assert events(w) == [("PUT", "w/a", "1"), ("PUT", "w/b", "2"),
                         ("DELETE", "w/a", "")]
    # From a past revision: the history since, then the end of it.
    w, _ = watch_lines(ep, ["watch", "w/a", r[0]["revision"], 2])
    assert events(w) == [("PUT", "w/a", "1"), ("DELETE", "w/a", "")]


def test_watch_of_compacted_history_is_ended_by_etcd(cluster):
    ep = cluster.endpoints
    (p,) = etcdcall(ep, ["put", "wc/k", "1"])
    etcdcall(ep, ["put", "wc/k", "2"])
    # Compacted through etcd's own gateway (etcdctl is another package).
    req = urllib.request.Request(
        ep[1] + "/v3/kv/compaction", method="POST",
        data=json.dumps({"revision": str(p["revision"] + 1),
                         "physical": True}).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    w, _ = watch_lines(ep, ["watch", "wc/k", p["revision"], 5])
    assert w[-1]["status"] == "refused"
    assert w[-1]["compact_revision"] == p["revision"] + 1
    assert "compacted" in w[-1]["error"]


def test_watch_ends_with_an_error_when_its_member_dies(cluster):
    ep = cluster.endpoints
    args = [ETCDCALL, "--endpoint", ep[2], "watch", "wd/k", "0", "1000"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        created = json.loads(p.stdout.readline())
        assert created["created"] and created["endpoint"] == ep[2]
        cluster.stop(2)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if cluster.procs[2] is None:
            cluster.start(2)
            cluster.wait_healthy()
    (end,) = [json.loads(x) for x in out.splitlines()]
    assert p.returncode == 1
    assert end["status"] == "unavailable" and ep[2] in end["error"]


def test_silent_endpoint_a_read_moves_on_a_write_is_unknown(cluster):
    """A server that takes the request and never answers: a read is
    tried on the next endpoint, but a write may have been applied there,
    so it is not repeated elsewhere: the caller hears "unknown"."""
    (port,) = free_ports(1)
    hole = Blackhole("127.0.0.1", port)
    silent = f"http://127.0.0.1:{port}"
    try:
        # Half of the 16 s each: the silent one, then the real one.
        (g,) = etcdcall([silent, cluster.endpoints[1]], ["get", "k"],
                        timeout=16)
        assert g["status"] == "ok"
        assert g["endpoint"] == cluster.endpoints[1]
        (p,) = etcdcall([silent, cluster.endpoints[1]],
                        ["put", "silent/k", "v"], timeout=3, check=False)
        assert p["status"] == "unknown"
        assert silent in p["error"] and "may have been applied" in \
            p["error"]
    finally:
        hole.close()
