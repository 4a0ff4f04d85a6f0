"""ONE table of the issue 10 phases from bench/peers/run.sh's JSON lines (bench/compare.sh):
the median of each figure per peer over its runs, baton's ratio against each peer, and
the issue's target for it. Usage: python3 bench/table.py RUNS.jsonl [MORE.jsonl ...]"""
import json
import statistics
import sys

PEERS = ["baton", "bullmq-node", "bullmq-rs"]
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip().startswith("{")]
if not rows:
    sys.exit("no runs to tabulate")


def get(r, path):
    for k in path.split("."):
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def med(peer, retention, payload, path):
    vals = [get(r, path) for r in rows if r["peer"] == peer and r.get("retention", "none") == retention
            and r.get("payload_bytes", 0) == payload]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


# (label, retention, payload bytes, JSON path, better: up/down, target: (kind, bound) where
#  kind "vs_node" = baton/node ratio bound, "abs" = baton's own value bound)
FIGURES = [
    ("add_bulk of 1000: jobs/s", "none", 0, "add_bulk.jobs_per_s", "up", ("vs_node", ">=", 5)),
    ("add_bulk: Redis CPU µs/added job", "none", 0, "add_bulk.redis_cpu_us_per_job", "down", ("vs_node", "<=", 1 / 3)),
    ("single adds, 50 callers: jobs/s", "none", 0, "add_single.jobs_per_s", "up", ("vs_node", ">=", 2.5)),
    ("single adds: Redis CPU µs/added job", "none", 0, "add_single.redis_cpu_us_per_job", "down", ("vs_node", "<=", 1 / 3)),
    ("process, no-op, c50, 1 worker process: jobs/s", "none", 0, "process.jobs_per_s", "up", ("vs_node", ">=", 4)),
    ("process: Redis CPU µs/processed job", "none", 0, "process.redis_cpu_us_per_job", "down", ("vs_node", "<=", 1 / 5)),
    ("process: worker process CPU µs/job", "none", 0, "process.worker_cpu_us_per_job", "down", None),
    ("process: Redis commands/job (scripts' inner ones included)", "none", 0, "process.commands_per_job", "down", None),
    ("process: worker RSS peak MiB", "none", 0, "process.worker_rss_mib.peak", "down", None),
    ("process, default retention: jobs/s", "default", 0, "process.jobs_per_s", "up", None),
    ("process, default retention: Redis CPU µs/job", "default", 0, "process.redis_cpu_us_per_job", "down", None),
    ("process, 1 KiB payload: jobs/s", "none", 1024, "process.jobs_per_s", "up", None),
    ("process, 1 KiB, default retention: jobs/s", "default", 1024, "process.jobs_per_s", "up", None),
    ("process, 1 KiB, default retention: Redis CPU µs/job", "default", 1024, "process.redis_cpu_us_per_job", "down", None),
    ("Redis memory per waiting job, bytes", "none", 0, "memory.bytes_per_job", "down", ("vs_node", "<=", 0.5)),
    ("Redis memory per waiting 1 KiB job, bytes", "none", 1024, "memory.bytes_per_job", "down", None),
    ("add → start at 1000/s offered: p50 ms", "none", 0, "latency.latency_ms.p50", "down", None),
    ("add → start at 1000/s offered: p99 ms", "none", 0, "latency.latency_ms.p99", "down", ("abs", "<", 2)),
    ("add → start at 1000/s offered: max ms", "none", 0, "latency.latency_ms.max", "down", None),
    ("latency phase: rate achieved by the producer, jobs/s", "none", 0, "latency.achieved_per_s", "up", None),
    ("latency phase: Redis CPU µs/job (add + claim + finish)", "none", 0, "latency.redis_cpu_us_per_job", "down", None),
    ("worker RSS idle MiB", "none", 0, "rss.worker_rss_mib.idle", "down", ("abs", "<", 20)),
    ("worker RSS after start MiB (long run)", "none", 0, "rss.worker_rss_mib.after_start", "down", None),
    ("worker RSS growth over the long run, %", "none", 0, "rss.worker_rss_mib.growth_pct", "down", ("absabs", "<=", 10)),
    ("long run: worker CPU µs/job", "none", 0, "rss.worker_cpu_us_per_job", "down", None),
    ("100 idle queues, a worker each: Redis % of a core", "none", 0, "idle_queues.redis_cpu_pct_of_core", "down", ("abs", "<", 1)),
    ("idle Redis, no worker at all: % of a core", "none", 0, "idle_queues.redis_cpu_pct_of_core_no_workers", "down", None),
    ("100 idle queues: Redis commands/s", "none", 0, "idle_queues.commands_per_s", "down", None),
    ("many workers: 10 processes × c50 / 1: rate ratio", "none", 0, "many_workers.rate_ratio", "up", ("abs", ">=", 1)),
    ("many workers: commands/job ratio (10 / 1)", "none", 0, "many_workers.commands_per_job_ratio", "down", ("abs", "<=", 1.1)),
]


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3f}"


def check(op, v, bound):
    return {">=": v >= bound, "<=": v <= bound, "<": v < bound}[op]


runs = {p: sorted({get(r, "guard.run") or 0 for r in rows if r["peer"] == p}) for p in PEERS}
r0 = rows[0]
print(f"jobs {r0['jobs']}, concurrency {r0['concurrency']}; runs per peer: "
      + ", ".join(f"{p} {len(runs[p])}" for p in PEERS if runs[p])
      + "; medians over the runs. baton/peer: for jobs/s above 1 is baton faster, for costs below 1 "
      "is baton cheaper.")
print()
print("| figure | better | baton | bullmq-node | bullmq-rs | baton/node | baton/rs | issue 10 target | met |")
print("| --- | :-: | ---: | ---: | ---: | ---: | ---: | --- | :-: |")
met = []
for label, ret, pay, path, better, target in FIGURES:
    v = {p: med(p, ret, pay, path)[0] for p in PEERS}
    if all(x is None for x in v.values()):
        continue
    b = v["baton"]
    ratio = {p: (b / v[p] if b is not None and v[p] else None) for p in ("bullmq-node", "bullmq-rs")}
    tgt, ok = "", ""
    if target:
        kind, op, bound = target
        if kind == "vs_node":
            tgt = f"baton/node {op} {bound:.2f}".replace("0.33", "1/3").replace("0.20", "1/5").replace("0.50", "1/2")
            x = ratio["bullmq-node"]
        elif kind == "absabs":
            tgt, x = f"|x| {op} {bound}", (abs(b) if b is not None else None)
        else:
            tgt, x = f"baton {op} {bound}", b
        ok = "–" if x is None else ("yes" if check(op, x, bound) else "**no**")
        met.append(ok)
    print(f"| {label} | {'↑' if better == 'up' else '↓'} | {fmt(b)} | {fmt(v['bullmq-node'])} | {fmt(v['bullmq-rs'])} | "
          f"{fmt(ratio['bullmq-node'])}{'×' if ratio['bullmq-node'] else ''} | "
          f"{fmt(ratio['bullmq-rs'])}{'×' if ratio['bullmq-rs'] else ''} | {tgt} | {ok} |")

# Default retention against baton's own no-retention rate with the same payload (issue
# 10: "with baton's default retention the processing rate stays within 15 % of the
# no-retention rate, and with 1 KiB payloads within 25 %"): the cost of retention alone.
# Until session 10 the 1 KiB row was divided by the tiny no-retention rate (payload and
# retention together); that figure is still printed, without a target.
for label, pay, base_pay, bound in [("default retention / no retention, tiny payload", 0, 0, 0.85),
                                    ("1 KiB payload, default retention / no retention, 1 KiB payload", 1024, 1024, 0.75),
                                    ("1 KiB payload, default retention / no retention, tiny payload", 1024, 0, None)]:
    v = med("baton", "default", pay, "process.jobs_per_s")[0]
    base = med("baton", "none", base_pay, "process.jobs_per_s")[0]
    if base and v:
        ok = "" if bound is None else ("yes" if v / base >= bound else "**no**")
        if ok:
            met.append(ok)
        tgt = "" if bound is None else f"≥ {bound:.2f}×"
        print(f"| baton process rate, {label} | ↑ | {v / base:.2f}× | | | | | {tgt} | {ok} |")

print()
print(f"targets met: {met.count('yes')} of {len([m for m in met if m != '–'])} checked.")
print()
print("Noise guard, per run (foreign CPU = other processes' share of the machine during the run):")
for r in rows:
    g = r.get("guard", {})
    print(f"- {r['peer']} run {g.get('run', '?')} (retention {r.get('retention', 'none')}, payload {r.get('payload_bytes', 0)} B, "
          f"phases {','.join(r.get('phases', []))}): foreign CPU {g.get('foreign_cpu_pct', '?')} % "
          f"(limit {g.get('limit_pct', '?')} %{', CONTENDED' if g.get('contended') else ''}), attempt {g.get('attempt', '?')}, "
          f"load before {g.get('loadavg_before', '?')}")
