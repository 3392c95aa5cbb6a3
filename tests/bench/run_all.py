"""Runs every benchmark (or those named) and prints one table: figure,
value, target, met? Each benchmark also writes build/bench/<name>.json;
the table goes to build/bench/summary.csv as well. tests/bench/run-all
builds first, then runs this with Debian's python."""
import csv
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import OUT, Figures, build_type, fmt  # noqa: E402


def print_table(figs):
    rows = []
    for f in figs:
        for r in f.rows():
            met = r["met"]
            rows.append((f.name, r["figure"], fmt(r["value"], r["unit"]),
                         r["target"] or "-",
                         "-" if met is None else ("yes" if met else "NO")))
    w = [max(len(x[i]) for x in rows + [("bench", "figure", "value",
                                          "target", "met?")])
         for i in range(5)]
    line = "  ".join("%-*s" % (w[i], h) for i, h in enumerate(
        ("bench", "figure", "value", "target", "met?")))
    print(line)
    print("-" * len(line))
    for x in rows:
        print("  ".join("%-*s" % (w[i], x[i]) for i in range(5)))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "summary.csv"), "w", newline="") as fp:
        c = csv.writer(fp)
        c.writerow(("bench", "figure", "value", "target", "met"))
        c.writerows(rows)


def main(names):
    import bench_probe_cost
    import bench_ssh
    import bench_detect
    import bench_idle
    import bench_failover
    import bench_failover_aws
    import bench_log_stall
    import bench_takeover
    import bench_detect_quorum
    import bench_etcd_traffic
    order = [
        ("idle", bench_idle.start, bench_idle.finish),
        ("probe_cost", bench_probe_cost.run, None),
        ("ssh", bench_ssh.run, None),
        ("detect", bench_detect.run, None),
        ("failover", bench_failover.run, None),
        ("failover_aws", bench_failover_aws.run, None),
        ("log_stall", bench_log_stall.run, None),
        ("takeover", bench_takeover.run, None),
        ("detect_quorum", bench_detect_quorum.run, None),
        ("etcd_traffic", bench_etcd_traffic.run, None),
    ]
    print(f"failoverd benchmarks: build {build_type()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M:%S')}",
          flush=True)
    t0 = time.monotonic()
    figs, pending = [], []
    for name, start, finish in order:
        if names and name not in names:
            continue
        print(f"==> {name}", flush=True)
        try:
            if finish is None:
                figs.append(start())
            else:
                # Runs beside the others: it is idle by design, and a
                # minute is a tenth of the budget.
                pending.append((name, start(), finish))
        except Exception:
            traceback.print_exc()
            f = Figures(name)
            f.add("(failed: see the traceback above)", None)
            figs.append(f)
    for name, handle, finish in pending:
        try:
            figs.append(finish(handle))
        except Exception:
            traceback.print_exc()
            f = Figures(name)
            f.add("(failed: see the traceback above)", None)
            figs.append(f)
    print()
    print_table(figs)
    print(f"\n{time.monotonic() - t0:.0f} s; figures in {OUT}/")


if __name__ == "__main__":
    main(sys.argv[1:])
