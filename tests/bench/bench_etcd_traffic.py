"""Cluster benchmark 3: etcd traffic at 1,000 services idle (issue 15).

1,000 services, one HTTP probe each (interval 5 s, timeout 2 s, as
bench_idle) on bench_target's loopback addresses, all healthy;
three failoverd members share a 3-member etcd (lease_ttl 10 s, the
default). Once every member has published its verdict on every service
(3,000 keys under P/verdicts/), a window of WINDOW seconds is measured
from etcd's own metrics endpoint (http://127.0.0.1:<client port>/metrics
of each etcd member, summed): the v3 HTTP/JSON gateway runs inside etcd
and hands every request to etcd's gRPC server, so
grpc_server_msg_received_total counts failoverd's requests (per method;
a watch or keepalive stream counts each message), and
etcd_network_client_grpc_{received,sent}_bytes_total their bytes as
protobuf (the JSON on the wire is larger). The figures are per failoverd
member per second (the sum over etcd's members, divided by three
members and the window). Also: the store's revision over the window
(every write makes one) and how many verdict keys were rewritten
(written on change only: none, the services being steady). A member
whose lease lapses (a loaded machine) loses its verdict keys and
publishes them all again when it rejoins: the members' cluster_member_left
events and the services' verdict changes in their logs are counted, so
that the figures can be read against them."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Figures, Targets, addresses, http_probe  # noqa: E402
from benchlib import service_conf  # noqa: E402
from habench import Etcd, Members  # noqa: E402

N = 1000
NET = 66
WINDOW = 30.0
INTERVAL = 5.0
PREFIX = "/fodbench-traffic"
METRIC = re.compile(r'^(grpc_server_msg_received_total|'
                    r'etcd_network_client_grpc_received_bytes_total|'
                    r'etcd_network_client_grpc_sent_bytes_total)'
                    r'(\{[^}]*\})? ([0-9.e+]+)$')
METHOD = re.compile(r'grpc_method="([^"]+)"')


def scrape(etcd):
    """{(metric, method): value} summed over etcd's members."""
    out = {}
    for i in range(len(etcd.endpoints)):
        for line in etcd.metrics(i).splitlines():
            m = METRIC.match(line)
            if not m:
                continue
            meth = METHOD.search(m.group(2) or "")
            k = (m.group(1), meth.group(1) if meth else "")
            out[k] = out.get(k, 0.0) + float(m.group(3))
    return out


def run():
    fig = Figures("etcd_traffic")
    addrs = addresses(N, NET)
    targets = Targets(addrs)
    etcd = Etcd()
    m = None
    try:
        work = tempfile.mkdtemp(prefix="fodbench-traffic.")
        m = Members(work, [service_conf(i, [http_probe(a, INTERVAL, 2.0)])
                           for i, a in enumerate(addrs)],
                    etcd.endpoints, prefix=PREFIX, lease_ttl=10)
        end = time.monotonic() + 180
        while True:
            keys, _ = etcd.keys(PREFIX + "/verdicts/")
            healthy = len(keys)
            if healthy >= 3 * N or time.monotonic() > end:
                break
            time.sleep(1.0)
        # The first verdicts settle (unknown -> healthy) before the
        # window opens.
        time.sleep(5.0)
        k0, rev0 = etcd.keys(PREFIX + "/verdicts/")
        s0, t0, w0 = scrape(etcd), time.monotonic(), time.time()
        time.sleep(WINDOW)
        s1, t1, w1 = scrape(etcd), time.monotonic(), time.time()
        k1, rev1 = etcd.keys(PREFIX + "/verdicts/")
    finally:
        if m:
            m.stop()
        etcd.stop()
        targets.close()
    dt = t1 - t0
    per = 3 * dt
    delta = {k: s1.get(k, 0.0) - s0.get(k, 0.0) for k in s1}
    reqs = {meth: v for (name, meth), v in delta.items()
            if name == "grpc_server_msg_received_total" and v > 0}
    rx = delta.get(("etcd_network_client_grpc_received_bytes_total", ""), 0)
    tx = delta.get(("etcd_network_client_grpc_sent_bytes_total", ""), 0)
    rewritten = sum(1 for k, r in k1.items() if k0.get(k) != r)
    left = changes = 0
    for n in m.names:
        left += sum(1 for t, _, _ in m.find(
            r"event=cluster_member_left", [n], after=w0) if t <= w1)
        changes += sum(1 for t, _, _ in m.find(
            r"event=service_(down|recovered|degraded) ", [n], after=w0)
            if t <= w1)
    fig.note("verdict_keys", len(k1))
    fig.note("requests_by_method", {k: v / per for k, v in reqs.items()})
    fig.note("window", dt)
    fig.add("verdict keys published (3 members x 1,000)", len(k1), "",
            f"{3 * N}", len(k1) == 3 * N)
    fig.add("requests per member per second", sum(reqs.values()) / per,
            "/s", None, None,
            by_method={k: round(v / per, 3) for k, v in reqs.items()})
    fig.add("bytes per member per second (gRPC, in + out)",
            (rx + tx) / per, "B/s", None, None, received=rx / per,
            sent=tx / per)
    fig.add("writes per second (store revisions, all members)",
            (rev1 - rev0) / dt, "/s")
    fig.add("verdict keys rewritten in the window", rewritten, "",
            "0 (on change only)", rewritten == 0)
    fig.add("services' verdict changes logged in the window", changes, "")
    fig.add("members seen leaving in the window (lease lapsed)", left, "")
    fig.save()
    return fig


if __name__ == "__main__":
    from run_all import print_table
    print_table([run()])
