"""Medians per peer and phase, and baton's ratios against each peer (bench/compare.sh)."""
import json
import statistics
import sys

rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip().startswith("{")]
peers = {}
for r in rows:
    peers.setdefault(r["peer"], []).append(r)
phases = [("add_bulk", "add, bulk of 100"), ("add_single", "add, single (50 in flight)"), ("process", "process, no-op, concurrency 50")]

def med(runs, phase, key):
    vals = [r[phase][key] for r in runs if phase in r]
    return statistics.median(vals) if vals else None

print(f"jobs {rows[0]['jobs']}, concurrency {rows[0]['concurrency']}, runs per peer: "
      + ", ".join(f"{p} {len(v)}" for p, v in peers.items()))
print()
print("| phase | peer | jobs/s | Redis CPU µs/job | baton speed ratio | baton Redis CPU ratio |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
b = peers.get("baton", [])
for phase, label in phases:
    for name, runs in peers.items():
        js, us = med(runs, phase, "jobs_per_s"), med(runs, phase, "redis_cpu_us_per_job")
        if js is None:
            continue
        bj, bu = med(b, phase, "jobs_per_s"), med(b, phase, "redis_cpu_us_per_job")
        ratio = f"{bj / js:.2f}×" if name != "baton" else "1"
        cpu = f"{bu / us:.2f}×" if name != "baton" else "1"
        print(f"| {label} | {name} {runs[0].get('version', '')} | {js:,.0f} | {us:.1f} | {ratio} | {cpu} |")
lat = [r["add_single_and_process"]["latency_ms"] for r in b if "add_single_and_process" in r]
if lat:
    print()
    print("baton enqueue→start latency (one producer adding one job at a time, an idle-ish worker "
          "with concurrency 50 keeping up): "
          f"p50 {statistics.median(l['p50'] for l in lat)} ms, p99 {statistics.median(l['p99'] for l in lat)} ms")
