#!/usr/bin/env python3
"""The fixed cost of a job, A/B: alternated runs of `lambdamr run wordcount` by several binaries.

    bench_fixed_cost.py [--runs N] [--timeline] INPUT LAMBDAMR [LAMBDAMR ...]

Each round runs every binary once (the order reversed every other round, so a change in the
machine's load falls on all of them alike) under `nice -n -20`, on INPUT (a small one, e.g.
`lambdamr gen text --size 1M --out in1m`, so that the fixed cost dominates). Prints per binary
the median wall time (with the quartiles) and the mean CPU (user+sys of all the job's processes,
from getrusage(RUSAGE_CHILDREN)). With --timeline, each run goes under a light strace (execve,
rename, link, exit_group; --seccomp-bpf) and the medians of a few marks on the job's path are
printed instead: the coordinator's exec, the map and reduce commit records, _SUCCESS, the report
and the driver's exit, in ms from the driver's execve, and the median of each run's report to
exit (the job's end: the driver sees the record, prints, stops the service). Ends with the load average: say it with
the figures.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def marks(trace_path):
    lines = open(trace_path).read().splitlines()
    first = lines[0].split()
    main, t0 = first[0], float(first[1])
    ev = {}
    for line in lines:
        f = line.split(None, 2)
        if len(f) < 3:
            continue
        pid, t, rest = f[0], (float(f[1]) - t0) * 1000, f[2]
        file_op = rest.startswith("rename(") or rest.startswith("link")
        if rest.startswith("execve(") and "bootstrap" in rest:
            ev.setdefault("coordinator_exec", t)
        elif file_op and "/map/m-" in rest and "commit.json" in rest:
            ev.setdefault("map_commit", t)
        elif file_op and "/reduce/r-" in rest and "commit.json" in rest:
            ev.setdefault("reduce_commit", t)
        elif file_op and "_SUCCESS" in rest:
            ev.setdefault("success", t)
        elif file_op and "report.json" in rest:
            ev.setdefault("report", t)
        elif rest.startswith("exit_group") and pid == main:
            ev.setdefault("exit", t)
    return ev


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("input")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lmr-fixed-cost-")
    out, trace = os.path.join(work, "out"), os.path.join(work, "trace")
    wall = {b: [] for b in a.binaries}
    cpu = {b: [] for b in a.binaries}
    tl = {b: {} for b in a.binaries}
    try:
        for i in range(a.runs):
            for b in a.binaries if i % 2 == 0 else a.binaries[::-1]:
                shutil.rmtree(out, ignore_errors=True)
                cmd = [b, "run", "wordcount", "--input", a.input, "--output", out]
                if a.timeline:
                    cmd = ["strace", "-f", "--seccomp-bpf", "-ttt", "-o", trace, "-e",
                           "trace=execve,rename,link,linkat,exit_group"] + cmd
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(["nice", "-n", "-20"] + cmd, stdout=subprocess.DEVNULL, check=True)
                t1 = time.perf_counter()
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall[b].append((t1 - t0) * 1000)
                cpu[b].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
                if a.timeline:
                    ev = marks(trace)
                    if "report" in ev and "exit" in ev:  # the job's end, per run
                        ev["report_to_exit"] = ev["exit"] - ev["report"]
                    for k, v in ev.items():
                        tl[b].setdefault(k, []).append(v)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for b in a.binaries:
        if a.timeline:
            order = ["coordinator_exec", "map_commit", "reduce_commit", "success", "report", "exit", "report_to_exit"]
            print(b + ": " + "  ".join("%s %.1f" % (k, statistics.median(tl[b][k])) for k in order if k in tl[b]))
        else:
            q = statistics.quantiles(wall[b], n=4) if len(wall[b]) > 1 else [wall[b][0]] * 3
            print("%s: wall median %.1f ms (p25 %.1f, p75 %.1f), CPU mean %.1f ms, %d runs"
                  % (b, statistics.median(wall[b]), q[0], q[2], statistics.mean(cpu[b]), len(wall[b])))
    print("load average:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
