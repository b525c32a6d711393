#!/usr/bin/env python3
"""CPU-time comparison for a loaded machine, where wall times mean little.

    benchmarks/cpu_compare.py WORKLOAD ROUNDS SYSTEM... [--bdb DIR] [--sort DIR] [--text DIR]
        [--base BIN] [--new BIN]

WORKLOAD is q1, q2, q3, sort or wordcount (the benchmarks/run workloads, the same commands and
DuckDB queries). SYSTEM is base, new (two lambdamr binaries; "new:reduce" adds --join reduce for
q3), duckdb (benchmarks/peers/duckdb_query.mjs, 2 threads) or gnusort. The systems run in an
order that rotates every round; each run's CPU is the user + system time of its whole process tree
(getrusage RUSAGE_CHILDREN). Prints the median wall and CPU per system. Outputs are not compared
(benchmarks/run does that).
"""
import argparse, os, resource, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("workload", choices=["q1", "q2", "q3", "sort", "wordcount"])
ap.add_argument("rounds", type=int)
ap.add_argument("systems", nargs="+")
ap.add_argument("--bdb", default=os.path.join(HERE, ".cache", "bdb-uv512M"))
ap.add_argument("--sort", default=os.path.join(HERE, ".cache", "sort-1024M"))
ap.add_argument("--text", default=os.path.join(HERE, ".cache", "text-256M"))
ap.add_argument("--base", help="the lambdamr binary called 'base'")
ap.add_argument("--new", default=os.path.join(HERE, "..", "build", "bin", "lambdamr"))
a = ap.parse_args()
D, W = a.bdb, a.workload
scratch = tempfile.mkdtemp(prefix="lmr-cpu-")


def cmd(name, out):
    if name == "duckdb":
        inp = {"q1": D + "/rankings", "q2": D + "/uservisits", "q3": D, "sort": a.sort, "wordcount": a.text}[W]
        extra = {"q1": ["1000"], "q2": ["8"], "q3": ["1980-01-01,1980-04-01"]}.get(W, [])
        return ["node", os.path.join(HERE, "peers", "duckdb_query.mjs"), W, inp, out] + extra
    if name == "gnusort":
        return ["bash", "-c", "LC_ALL=C sort -S 25%% --parallel=2 %s/part-* > '%s'" % (a.sort, out)]
    which, _, variant = name.partition(":")
    binary = {"base": a.base, "new": a.new}[which]
    if not binary:
        sys.exit("give --base BIN for the system 'base'")
    b = [binary, "run"]
    if W == "q1":
        b += ["scan", "--input", D + "/rankings", "--delimiter", ",", "--fields", "1,2", "--where", "2>1000"]
    elif W == "q2":
        b += ["aggregate", "--input", D + "/uservisits", "--delimiter", ",", "--key", "1:8", "--value", "4",
              "--op", "sum"]
    elif W == "q3":
        b += ["bdb-q3", "--input", D, "--date-from", "1980-01-01", "--date-to", "1980-04-01"]
        b += ["--join", variant] if variant else []
    elif W == "sort":
        b += ["sort", "--input", a.sort]
    else:
        b += ["wordcount", "--input", a.text]
    return b + ["--output", out, "--json"]


def remove(p):
    shutil.rmtree(p, ignore_errors=True)
    if os.path.isfile(p):
        os.unlink(p)


res = {s: [] for s in a.systems}
try:
    for r in range(a.rounds):
        k = r % len(a.systems)
        for s in a.systems[k:] + a.systems[:k]:
            out = os.path.join(scratch, s.replace(":", "_"))
            remove(out)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            p = subprocess.run(cmd(s, out), capture_output=True, env=dict(os.environ, DUCKDB_THREADS="2"))
            dt = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode:
                sys.exit("%s failed: %s" % (s, p.stderr.decode(errors="replace")[-500:]))
            res[s].append((dt, ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime))
            remove(out)
finally:
    shutil.rmtree(scratch, ignore_errors=True)
print("%s, %d rounds, load average %.1f" % (W, a.rounds, os.getloadavg()[0]))
for s in a.systems:
    print("  %-12s wall %7.3f s  cpu %7.3f s   walls %s" % (
        s, statistics.median(x[0] for x in res[s]), statistics.median(x[1] for x in res[s]),
        " ".join("%.2f" % x[0] for x in res[s])))
