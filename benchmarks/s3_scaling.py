#!/usr/bin/env python3
"""The measuring loop of benchmarks/bench_s3_scaling.sh (which sets up the upstream, the data
and the BENCH_* environment this reads; run that script, not this file).

Points: throughput against concurrency at the base latency, against the latency setting at
one concurrency, and against LMR_S3_READ_AHEAD at concurrency 1 (one function's overlap), for word count and BDB Query 2, round-robin over the points each repeat. Each
point starts its own shaping proxy (tests/tools/s3_fault_proxy.py) in front of the upstream,
runs the job with s3:// input and output through it, records the wall time and the proxy's
counts, and (unless BENCH_CHECK=0) compares the output with a local run of the same job.
"""
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

E = os.environ
WORK, OUT, LMR, PROXY = E["BENCH_WORK"], E["BENCH_OUT"], E["BENCH_LMR"], E["BENCH_PROXY"]
CONC = [int(x) for x in E["BENCH_CONC"].split()]
LATS = E["BENCH_LATS"].split()
LAT_CONC = int(E["BENCH_LAT_CONC"])
BW, BASE_LAT = E["BENCH_BW"], E["BENCH_BASE_LAT"]
READ_AHEAD, UPSTREAM = E.get("BENCH_READ_AHEAD", ""), E["BENCH_UPSTREAM"]
READ_PART = E.get("BENCH_READ_PART", "")
RA_CURVE = E.get("BENCH_RA_CURVE", "").split()
REPEATS, CHECK = int(E["BENCH_REPEATS"]), E["BENCH_CHECK"] == "1"
ONLY = E["BENCH_ONLY"].split(",")
MIB = 1 << 20
MAP_TASKS, REDUCERS = 64, 4

JOBS = {
    "wordcount": dict(args=["wordcount"], input="text", local=os.path.join(WORK, "text"), conv=int),
    "q2": dict(args=["aggregate", "--delimiter", ",", "--key", "1:8", "--value", "4", "--op", "sum"],
               input="uservisits", local=os.path.join(WORK, "bdb", "uservisits"), conv=float),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def input_bytes(d):
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.startswith("part-"))


def read_kv(d, conv):
    out = {}
    for name in os.listdir(d):
        if name.startswith(("_", ".")) or not os.path.isfile(os.path.join(d, name)):
            continue
        with open(os.path.join(d, name), "rb") as f:
            for line in f:
                k, _, v = line.rstrip(b"\n").rpartition(b"\t")
                if k:
                    out[k] = conv(v)
    return out


def differs(ref, got, conv):
    if set(ref) != set(got):
        return "key sets differ (%d vs %d keys)" % (len(ref), len(got))
    for k, v in ref.items():
        w = got[k]
        if (v != w) if conv is int else abs(v - w) > 1e-9 * max(abs(v), abs(w)):
            return "value of %r: %r vs %r" % (k, v, w)
    return None


def run_job(job, inp, out, conc, env):
    j = JOBS[job]
    split = max(64 * 1024, input_bytes(j["local"]) // MAP_TASKS + 1)
    argv = [LMR, "run"] + j["args"] + ["--input", inp, "--output", out, "--concurrency", str(conc),
                                      "--mappers", str(MAP_TASKS), "--split-size", str(split),
                                      "--reducers", str(REDUCERS), "--json"]
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, timeout=3600)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(argv[:3]), p.returncode,
                                                         p.stderr.decode(errors="replace").strip()[-600:]))
    phases = {}
    try:  # the job report (--json): the map and reduce phases' wall time
        rep = json.loads(p.stdout)
        for ph in ("map", "reduce"):
            phases[ph] = rep["phases"][ph]["wall_ms"] / 1000.0
    except (ValueError, KeyError, TypeError):
        pass
    return dt, phases


def start_proxy(latency, tag):
    port_file = os.path.join(WORK, "port-" + tag)
    counts = os.path.join(WORK, "counts-%s.json" % tag)
    argv = [sys.executable, PROXY, "--upstream", UPSTREAM, "--port-file", port_file, "--counts-file", counts,
            "--seed", "1", "--latency-ms", latency, "--bandwidth-mbs", BW, "--get-rate", "5500", "--put-rate", "3500"]
    p = subprocess.Popen(argv, stderr=open(os.path.join(WORK, "proxy-%s.log" % tag), "w"))
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return p, "http://127.0.0.1:%s" % open(port_file).read().strip(), counts
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("the shaping proxy did not start: %s" % open(os.path.join(WORK, "proxy-%s.log" % tag)).read())


def stop_proxy(p, counts):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    return json.load(open(counts))


def main():
    env0 = dict(os.environ)
    if READ_AHEAD:
        env0["LMR_S3_READ_AHEAD"] = READ_AHEAD
    if READ_PART:
        env0["LMR_S3_READ_PART_BYTES"] = READ_PART
    jobs = [j for j in JOBS if j in ONLY]
    refs = {}
    for job in jobs:  # the reference: the same job on the local files, no proxy
        out = os.path.join(WORK, "ref-" + job)
        run_job(job, JOBS[job]["local"], out, 2, env0)
        refs[job] = read_kv(out, JOBS[job]["conv"])
        log("reference %s: %d keys" % (job, len(refs[job])))
    ra = READ_AHEAD or "4"
    points = [(job, "concurrency", c, BASE_LAT, ra) for job in jobs for c in CONC]
    points += [(job, "latency", LAT_CONC, lat, ra) for job in jobs for lat in LATS]
    points += [(job, "read_ahead", 1, BASE_LAT, v) for job in jobs for v in RA_CURVE]
    times = {pt: [] for pt in points}
    phase_s = {pt: [] for pt in points}
    counts = {}
    failures = []
    n = 0
    for rnd in range(REPEATS):
        for pt in points:
            job, curve, conc, lat, ra = pt
            n += 1
            tag = "%d" % n
            prefix = "s3://scale-out/%s-%s-c%d-l%s-ra%s-%d/" % (job, curve, conc, lat.replace(":", "_"), ra, rnd)
            dt = None
            for attempt in (1, 2):  # a failed job is logged and run once more; a second failure is recorded
                p, url, cfile = start_proxy(lat, "%s-%d" % (tag, attempt))
                env = dict(env0, AWS_ENDPOINT_URL=url, LMR_S3_READ_AHEAD=ra)
                try:
                    dt, ph = run_job(job, "s3://scale-in/%s/" % JOBS[job]["input"], prefix, conc, env)
                except RuntimeError as e:
                    log("  %s at concurrency %d, latency %s, read-ahead %s: attempt %d failed: %s"
                        % (job, conc, lat, ra, attempt, str(e)[-400:]))
                    failures.append("%s %s c%d l%s ra%s attempt %d: %s" % (job, curve, conc, lat, ra, attempt,
                                                                           str(e)[-300:]))
                finally:
                    c = stop_proxy(p, cfile)
                if dt is not None:
                    break
                subprocess.run(["aws", "s3", "rm", "--recursive", "--quiet", prefix], check=False)
                prefix = prefix.rstrip("/") + "-retry/"
            if dt is None:
                continue
            if CHECK:
                local = os.path.join(WORK, "got")
                shutil.rmtree(local, ignore_errors=True)
                subprocess.run(["aws", "s3", "cp", "--recursive", "--quiet", prefix, local, "--exclude", "_lambdamr/*"],
                               check=True)
                d = differs(refs[job], read_kv(local, JOBS[job]["conv"]), JOBS[job]["conv"])
                if d:
                    sys.exit("bench_s3_scaling: %s at concurrency %d, latency %s: output differs from the local run: %s"
                             % (job, conc, lat, d))
            subprocess.run(["aws", "s3", "rm", "--recursive", "--quiet", prefix], check=True)
            times[pt].append(dt)
            phase_s[pt].append(ph)
            counts[pt] = c
            log("  %-9s %-11s concurrency %-3d latency %-6s read-ahead %-3s %.2f s (map %.2f s, reduce %.2f s), "
                "%d requests (%d throttled)%s"
                % (job, curve, conc, lat, ra, dt, ph.get("map", 0), ph.get("reduce", 0), c["requests"],
                   c.get("throttled", 0), ", output checked" if CHECK else ""))
    rows = []
    for pt in points:
        job, curve, conc, lat, ra = pt
        if not times[pt]:
            continue  # failed twice: listed under the table
        med = statistics.median(times[pt])
        size = input_bytes(JOBS[job]["local"])
        c = counts[pt]
        phase = {k: round(statistics.median([p[k] for p in phase_s[pt] if k in p] or [0]), 3)
                 for k in ("map", "reduce")}
        rows.append(dict(workload=job, curve=curve, concurrency=conc, latency_ms=lat, bandwidth_mbs_per_conn=BW,
                         read_ahead=ra, input_bytes=size, repeats=len(times[pt]),
                         median_s=round(med, 3), map_s=phase["map"], reduce_s=phase["reduce"],
                         throughput_mib_s=round(size / MIB / med, 2),
                         requests=c["requests"], requests_per_s=round(c["requests"] / med, 1),
                         throttled=c.get("throttled", 0)))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "scaling-s3.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["Upstream %s; proxy bandwidth %s MB/s per connection, 5,500 GET/s and 3,500 PUT/s per prefix; "
             "%d map tasks, %d reducers; LMR_S3_READ_PART_BYTES %s." % (E.get("BENCH_UPSTREAM_KIND", UPSTREAM), BW,
                                                                        MAP_TASKS, REDUCERS, READ_PART or "default"),
             "", "| workload | curve | concurrency | latency ms | read-ahead | median s | map s | reduce s | MiB/s | requests "
                 "| requests/s | throttled |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append("| %(workload)s | %(curve)s | %(concurrency)d | %(latency_ms)s | %(read_ahead)s | %(median_s).3f | "
                     "%(map_s).2f | %(reduce_s).2f | %(throughput_mib_s).2f | %(requests)d | %(requests_per_s).1f | %(throttled)d |" % r)
    if failures:
        lines += ["", "Failed attempts (each point is run once more after a failure):"]
        lines += ["- " + f.replace("\n", " ") for f in failures]
    table = "\n".join(lines) + "\n"
    open(os.path.join(OUT, "scaling-s3.md"), "w").write(table)
    plot(rows, jobs)
    print(table)
    print("results in %s" % OUT)


def plot(rows, jobs):
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no plots (benchmarks/deps.sh installs gnuplot-nox)")
        return
    for curve, xcol, xlabel, extra in (
            ("concurrency", "concurrency", "concurrency (invocations in flight, log scale)", "set logscale x 2\n"),
            ("latency", "latency_ms", "first-byte latency setting (ms; MIN:MAX plotted at its midpoint)", ""),
            ("read_ahead", "read_ahead", "LMR_S3_READ_AHEAD (ranged GETs in flight per reader, log scale)",
             "set logscale x 2\n")):
        if not any(r["curve"] == curve for r in rows):
            continue
        plots = []
        for job in jobs:
            dat = os.path.join(OUT, "scaling-s3-%s-%s.dat" % (curve, job))
            with open(dat, "w") as f:
                for r in rows:
                    if r["workload"] == job and r["curve"] == curve:
                        x = r[xcol]
                        if curve == "latency":
                            lo, _, hi = str(x).partition(":")
                            x = (float(lo) + float(hi or lo)) / 2
                        f.write("%s %s\n" % (x, r["throughput_mib_s"]))
            plots.append("'%s' using 1:2 with linespoints lw 2 pt 7 title '%s'" % (dat, job))
        title = {"concurrency": "throughput vs concurrency (latency %s ms, %s MB/s per connection)" % (BASE_LAT, BW),
                 "latency": "throughput vs first-byte latency (concurrency %d, %s MB/s per connection)" % (LAT_CONC, BW),
                 "read_ahead": "one function: throughput vs read-ahead (concurrency 1, latency %s ms, %s MB/s per "
                               "connection)" % (BASE_LAT, BW)}[curve]
        body = ("set title '%s'\nset xlabel '%s'\nset ylabel 'MiB/s of input'\nset grid\nset yrange [0:*]\n"
                "set key top left\n%s"
                "plot %s\n" % (title, xlabel, extra, ", ".join(plots)))
        for term, ext in (("pngcairo size 900,500", "png"), ("svg size 900,500", "svg")):
            out = os.path.join(OUT, "scaling-s3-%s.%s" % (curve, ext))
            script = "set terminal %s noenhanced\nset output '%s'\n%s" % (term, out, body)
            p = subprocess.run([gp], input=script, text=True, capture_output=True)
            if p.returncode != 0 and ext == "png":
                p = subprocess.run([gp], input=script.replace("pngcairo", "png"), text=True, capture_output=True)
            if p.returncode != 0:
                log("gnuplot failed for %s: %s" % (out, p.stderr.strip()[-300:]))


if __name__ == "__main__":
    main()
