#!/usr/bin/env python3
"""baton's no-op processing rate and Redis CPU per job on several topologies.

  A   one plain redis-server, one bench process
  B   the same server over TLS (a CA and server cert made here with openssl)
  C   one plain redis-server, 3 bench processes at once, each on its own queue
  D   a 3-master Redis Cluster (no replicas), 3 bench processes at once, each queue's
      keys on a different master
  D1  the same cluster, one bench process (the cluster client against A)

Every server runs as in bench/compare.sh (AOF on, appendfsync everysec, noeviction), on
loopback, on free ports (never 6379), in a temp dir; all of them and every bench process
are killed at exit, also on error or Ctrl-C. A fresh deployment is started for every
scenario of every run, and the scenarios are interleaved run by run so that noise from
other work on the machine spreads over all of them.

Each bench process is `baton bench --process-only --json --queue Q`: it bulk-adds JOBS
jobs (batches of 100), then drains them with one no-op worker, concurrency CONCURRENCY,
and prints one JSON line. Measured here, per scenario:

- processing jobs/s: one process, its own `process.jobs_per_s`; several, the total jobs
  over the union of their processing windows (each window ends when its JSON line
  arrives and lasts `process.seconds`);
- end-to-end jobs/s: total jobs / (first bench start .. last bench exit), add included;
- Redis CPU per job: the change of used_cpu_user + used_cpu_sys (INFO cpu) summed over
  every node, from before the first bench starts to after the last exits, over the total
  jobs: add + process (with several processes the bench's own per-phase figure would
  count the others' work too); per shard for the cluster; for one bench process also
  the bench's own process-phase figure;
- bench-process CPU per job: user + sys of each bench process (wait4 rusage, the whole
  process: start-up, add and process) over its jobs;
- the 1-minute load average before the scenario, and the CPU others used on the machine
  meanwhile (busy time from /proc/stat minus Redis's and the bench processes' own).

Before each scenario it waits (at most QUIET_MAX_S, default 8) for 2 calm seconds; a
scenario during which others used more than FOREIGN_MAX_CORES (default 0.4) is run again
(at most CONTENDED_RETRIES times, default 1) and, still contended, kept and counted.
Prints a markdown table of medians over RUNS, then every raw JSON line.
Usage: bench/topology.py   (env: RUNS=3 JOBS=20000 CONCURRENCY=50 PROCS=3
       BATON=path/to/baton, else `cargo build --release --locked` and target/release/baton;
       SCENARIOS=A,B,C,D,D1)
Python 3 standard library only, plus redis-server, redis-cli and openssl.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(os.environ.get("RUNS", "3"))
JOBS = int(os.environ.get("JOBS", "20000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "50"))
PROCS = int(os.environ.get("PROCS", "3"))
QUIET_MAX_S = float(os.environ.get("QUIET_MAX_S", "8"))
FOREIGN_MAX_CORES = float(os.environ.get("FOREIGN_MAX_CORES", "0.4"))
CONTENDED_RETRIES = int(os.environ.get("CONTENDED_RETRIES", "1"))
SCENARIOS = [s.strip() for s in os.environ.get("SCENARIOS", "A,B,C,D,D1").split(",") if s.strip()]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")

_children = []  # every Popen started here (each leads its own process group)
_tmp = tempfile.mkdtemp(prefix="baton-topology-")


def _cleanup():
    for p in _children:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for p in _children:
        try:
            p.wait(timeout=5)
        except Exception:
            pass
    _children.clear()
    shutil.rmtree(_tmp, ignore_errors=True)


def _on_signal(sig, _frame):
    raise SystemExit(128 + sig)


def spawn(args, **kw):
    p = subprocess.Popen(args, start_new_session=True, **kw)
    _children.append(p)
    return p


def stop(procs):
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        if p in _children:
            _children.remove(p)


# ---------------------------------------------------------------- a minimal RESP client
class Conn:
    """One connection, enough for INFO and CLUSTER commands (RESP2)."""

    def __init__(self, port, ca=None, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.f = s.makefile("rwb")
        self.s = s

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.f.write(b"".join(out))
        self.f.flush()
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def query(port, *args, ca=None):
    c = Conn(port, ca)
    try:
        return c.cmd(*args)
    finally:
        c.close()


def info(port, section, ca=None):
    text = query(port, "INFO", section, ca=ca)
    return dict(l.split(":", 1) for l in text.splitlines() if ":" in l and not l.startswith("#"))


def cpu_seconds(port, ca=None):
    i = info(port, "cpu", ca)
    return float(i["used_cpu_user"]) + float(i["used_cpu_sys"])


# ---------------------------------------------------------------- servers
def free_port(cluster=False):
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port == 6379 or (cluster and (port + 10000 > 65535 or port + 10000 == 6379)):
            continue
        if cluster:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


class Server:
    def __init__(self, name, tls=None, cluster=False):
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=_tmp)
        self.ca = tls["ca"] if tls else None
        for attempt in range(5):
            self.port = free_port(cluster)
            args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
                    "--appendonly", "yes", "--appendfsync", "everysec",
                    "--maxmemory-policy", "noeviction", "--logfile", "redis.log"]
            if tls:
                args += ["--port", "0", "--tls-port", str(self.port),
                         "--tls-cert-file", tls["cert"], "--tls-key-file", tls["key"],
                         "--tls-ca-cert-file", tls["ca"], "--tls-auth-clients", "no"]
                if cluster:
                    args += ["--tls-cluster", "yes"]
            else:
                args += ["--port", str(self.port)]
            if cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", "5000"]
            self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if query(self.port, "PING", ca=self.ca) == "PONG":
                        return
                except (OSError, ConnectionError, RuntimeError):
                    pass
                time.sleep(0.02)
            stop([self.proc])  # port taken meanwhile, or slow: try another one
        raise RuntimeError(f"redis-server {name} did not start; see {self.dir}/redis.log")

    def url(self):
        return f"{'rediss' if self.ca else 'redis'}://127.0.0.1:{self.port}"


def make_tls():
    d = os.path.join(_tmp, "tls")
    os.makedirs(d)
    p = lambda f: os.path.join(d, f)
    run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", p("ca.key"), "-out", p("ca.crt"), "-subj", "/CN=baton bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"),
        "-out", p("server.csr"), "-subj", "/CN=127.0.0.1")
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-out", p("server.crt"), "-extfile", p("ext.cnf"))
    return {"ca": p("ca.crt"), "cert": p("server.crt"), "key": p("server.key")}


def make_cluster(tag):
    nodes = [Server(f"{tag}-node{i}", cluster=True) for i in range(3)]
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
                    "--cluster-replicas", "0", "--cluster-yes"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    deadline = time.time() + 30
    while True:
        ok = all(info(n.port, "cluster").get("cluster_enabled") == "1" and
                 "cluster_state:ok" in query(n.port, "CLUSTER", "INFO") and
                 len(query(n.port, "CLUSTER", "SLOTS")) == 3 for n in nodes)
        if ok:
            return nodes
        if time.time() > deadline:
            raise RuntimeError("cluster did not reach cluster_state:ok on every node in 30 s")
        time.sleep(0.1)


def slot_owner(nodes, key):
    """The port of the master that owns `key`'s slot (CLUSTER KEYSLOT + CLUSTER SLOTS)."""
    slot = query(nodes[0].port, "CLUSTER", "KEYSLOT", key)
    for start, end, master, *_ in query(nodes[0].port, "CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise RuntimeError(f"no owner for slot {slot}")


def spread_queues(nodes, prefix):
    """One queue name per master: baton:{NAME}:wait of each lands on a different one."""
    names, seen, i = {}, set(), 0
    while len(names) < len(nodes):
        q = f"{prefix}-{i}"
        owner = slot_owner(nodes, f"baton:{{{q}}}:wait")
        if owner not in seen:
            seen.add(owner)
            names[owner] = q
        i += 1
    return [(names[n.port], n.port) for n in nodes]


# ---------------------------------------------------------------- machine load
def cpu_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def wait_quiet():
    """Waits (at most QUIET_MAX_S) until the machine used < 0.3 cores for 2 s in a row."""
    t0, calm = time.monotonic(), 0
    while time.monotonic() - t0 < QUIET_MAX_S and calm < 2:
        b = cpu_busy_seconds()
        time.sleep(1)
        calm = calm + 1 if cpu_busy_seconds() - b < 0.3 else 0
    return time.monotonic() - t0


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---------------------------------------------------------------- one scenario
def bench_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.setdefault("RUST_LOG", "warn")
    return env


def run_benches(baton, conn_args, queues):
    """Starts one bench process per queue at once; returns their results and timings."""
    procs, lines = [], {}

    def reader(p, i):
        for raw in p.stdout:
            s = raw.decode(errors="replace").strip()
            if s.startswith("{"):
                lines[i] = (time.monotonic(), json.loads(s))

    t0 = time.monotonic()
    for i, q in enumerate(queues):
        p = spawn([baton, *conn_args, "bench", "--process-only", "--json", "--queue", q,
                   "--jobs", str(JOBS), "--concurrency", str(CONCURRENCY)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bench_env())
        procs.append((p, threading.Thread(target=reader, args=(p, i), daemon=True)))
        procs[-1][1].start()
    done = {}  # index -> (exit time, status, rusage), each reaped as soon as it exits
    deadline = time.monotonic() + 600
    while len(done) < len(procs):
        for i, (p, _) in enumerate(procs):
            if i not in done:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    done[i] = (time.monotonic(), status, ru)
        if time.monotonic() > deadline:
            raise RuntimeError("a bench process ran over 600 s")
        time.sleep(0.005)
    out = []
    for i, (p, th) in enumerate(procs):
        end, status, ru = done[i]
        p.returncode = os.waitstatus_to_exitcode(status)
        th.join(5)
        err = p.stderr.read().decode(errors="replace")
        _children.remove(p)
        if p.returncode != 0 or i not in lines:
            raise RuntimeError(f"bench on {queues[i]} failed ({p.returncode}): {err.strip()[-2000:]}")
        at, res = lines[i]
        out.append({"queue": queues[i], "bench": res, "exit_s": end - t0,
                    "process_window_s": [at - t0 - res["process"]["seconds"], at - t0],
                    "cpu_s": ru.ru_utime + ru.ru_stime})
    return out, max(o["exit_s"] for o in out)


def scenario(name, run, baton, tls):
    tag = f"r{run}-{name}"
    ca, servers = None, []
    try:
        if name in ("A", "C"):
            servers = [Server(tag)]
            conn = ["--redis-url", servers[0].url()]
        elif name == "B":
            servers = [Server(tag, tls=tls)]
            ca = tls["ca"]
            conn = ["--redis-url", servers[0].url(), "--redis-ca-cert", ca]
        else:
            servers = make_cluster(tag)
            conn = ["--cluster-nodes", ",".join(s.url() for s in servers)]
        nprocs = PROCS if name in ("C", "D") else 1
        if name in ("D", "D1"):
            spread = spread_queues(servers, f"topo-{tag}")[:nprocs]
            queues = [q for q, _ in spread]
            home = {q: port for q, port in spread}
        else:
            queues = [f"topo-{tag}-{i}" for i in range(nprocs)]
            home = {q: servers[0].port for q in queues}
        ld = load1()
        cpu0 = {s.port: cpu_seconds(s.port, ca) for s in servers}
        busy0 = cpu_busy_seconds()
        benches, wall = run_benches(baton, conn, queues)
        busy = cpu_busy_seconds() - busy0
        cpu = {s.port: cpu_seconds(s.port, ca) - cpu0[s.port] for s in servers}
    finally:
        stop([s.proc for s in servers])
    jobs = sum(b["bench"]["jobs"] for b in benches)
    start = min(b["process_window_s"][0] for b in benches)
    end = max(b["process_window_s"][1] for b in benches)
    redis_cpu = sum(cpu.values())
    bench_cpu = sum(b["cpu_s"] for b in benches)
    rec = {
        "scenario": name, "run": run, "jobs_per_process": JOBS, "concurrency": CONCURRENCY,
        "servers": len(servers), "tls": name == "B", "bench_processes": len(benches),
        "jobs": jobs, "load1_before": ld, "wall_s": wall,
        "process_jobs_per_s": (benches[0]["bench"]["process"]["jobs_per_s"] if len(benches) == 1
                               else jobs / (end - start)),
        "process_window_s": end - start,
        "end_to_end_jobs_per_s": jobs / wall,
        "redis_cpu_us_per_job": redis_cpu * 1e6 / jobs,
        "redis_cpu_us_per_job_process_phase": (benches[0]["bench"]["process"]["redis_cpu_us_per_job"]
                                               if len(benches) == 1 else None),
        "bench_cpu_us_per_job": bench_cpu * 1e6 / jobs,
        "others_cpu_cores": max(0.0, busy - redis_cpu - bench_cpu) / wall,
        "nodes": [],
        "benches": benches,
    }
    for port, c in cpu.items():
        n = sum(b["bench"]["jobs"] for b in benches if home[b["queue"]] == port)
        rec["nodes"].append({"port": port, "redis_cpu_s": c, "jobs": n,
                             "redis_cpu_us_per_job": c * 1e6 / n if n else None})
    return rec


# ---------------------------------------------------------------- report
LABELS = {
    "A": "A: 1 server, 1 bench",
    "B": "B: 1 server over TLS, 1 bench",
    "C": f"C: 1 server, {PROCS} benches",
    "D": f"D: cluster of 3 masters, {PROCS} benches (1 queue per shard)",
    "D1": "D1: cluster of 3 masters, 1 bench",
}


def med(recs, key):
    vals = [r[key] for r in recs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def report(recs):
    by = {}
    for r in recs:
        by.setdefault(r["scenario"], []).append(r)
    print(f"jobs per bench process {JOBS}, concurrency {CONCURRENCY}, medians of "
          + ", ".join(f"{s} {len(v)}" for s, v in by.items()) + " runs; runs where other processes used more than "
          + f"{FOREIGN_MAX_CORES} cores (kept after {CONTENDED_RETRIES} retries): "
          + ", ".join(f"{s} {sum(r['contended'] for r in v)}" for s, v in by.items()))
    print()
    print("| scenario | processing jobs/s | end-to-end jobs/s (add + process) | Redis CPU µs/job, add + process, all nodes "
          "| Redis CPU µs/job, process phase (1 bench only) | bench-process CPU µs/job | load 1 min before | others' CPU during run (cores) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in SCENARIOS:
        rs = by.get(s)
        if not rs:
            continue
        loads = ", ".join(f"{r['load1_before']:.1f}" for r in rs)
        print(f"| {LABELS[s]} | {fmt(med(rs, 'process_jobs_per_s'), ',.0f')} | {fmt(med(rs, 'end_to_end_jobs_per_s'), ',.0f')} "
              f"| {fmt(med(rs, 'redis_cpu_us_per_job'), '.1f')} | {fmt(med(rs, 'redis_cpu_us_per_job_process_phase'), '.1f')} "
              f"| {fmt(med(rs, 'bench_cpu_us_per_job'), '.1f')} | {loads} "
              f"| {fmt(med(rs, 'others_cpu_cores'), '.2f')} |")
    print()

    def ratio(a, b, key):
        x, y = med(by.get(a, []), key), med(by.get(b, []), key)
        return "–" if x is None or y is None or y == 0 else f"{x / y:.2f}×"

    print("| comparison | processing rate | end-to-end rate | Redis CPU per job (add + process) | bench-process CPU per job |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for a, b, what in [("B", "A", "TLS / plain (B / A)"), ("C", "A", f"{PROCS} benches / 1, one server (C / A)"),
                       ("D", "C", f"{PROCS} shards / 1 shard, {PROCS} benches (D / C)"),
                       ("D", "A", f"cluster with {PROCS} benches / one server, 1 bench (D / A)"),
                       ("D1", "A", "cluster client / plain, 1 bench (D1 / A)")]:
        if a in by and b in by:
            print(f"| {what} | {ratio(a, b, 'process_jobs_per_s')} | {ratio(a, b, 'end_to_end_jobs_per_s')} "
                  f"| {ratio(a, b, 'redis_cpu_us_per_job')} | {ratio(a, b, 'bench_cpu_us_per_job')} |")
    print()
    for s in ("C", "D"):
        if s not in by:
            continue
        per = [sorted(b["bench"]["process"]["jobs_per_s"] for b in r["benches"]) for r in by[s]]
        print(f"{s}: each bench process's own processing jobs/s, per run: "
              + "; ".join(", ".join(f"{v:,.0f}" for v in p) for p in per))
        if s == "D":
            shard = [sorted(n["redis_cpu_us_per_job"] for n in r["nodes"] if n["redis_cpu_us_per_job"]) for r in by[s]]
            print("D: Redis CPU µs/job (add + process) on each shard, per run: "
                  + "; ".join(", ".join(f"{v:.1f}" for v in p) for p in shard))
    print()
    print("Raw JSON lines:")
    for r in recs:
        print(json.dumps(r, separators=(",", ":")))


def main():
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    for tool in ("redis-server", "redis-cli", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    baton = os.environ.get("BATON")
    if not baton:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
        baton = os.path.join(ROOT, "target", "release", "baton")
    tls = make_tls() if "B" in SCENARIOS else None
    recs = []
    for run in range(1, RUNS + 1):
        for s in SCENARIOS:
            for attempt in range(1, CONTENDED_RETRIES + 2):
                waited = wait_quiet()
                r = scenario(s, run, baton, tls)
                r["attempt"], r["quiet_wait_s"] = attempt, waited
                r["contended"] = r["others_cpu_cores"] > FOREIGN_MAX_CORES
                if not r["contended"]:
                    break
                print(f"run {run} {s} attempt {attempt}: others used {r['others_cpu_cores']:.2f} cores "
                      f"(limit {FOREIGN_MAX_CORES}){'; retrying' if attempt <= CONTENDED_RETRIES else '; kept'}",
                      file=sys.stderr, flush=True)
            print(f"run {run} {s}: processing {r['process_jobs_per_s']:,.0f} jobs/s, "
                  f"Redis {r['redis_cpu_us_per_job']:.1f} µs/job, load {r['load1_before']:.1f}, "
                  f"others {r['others_cpu_cores']:.2f} cores", file=sys.stderr, flush=True)
            recs.append(r)
    report(recs)


if __name__ == "__main__":
    try:
        main()
    finally:
        _cleanup()
