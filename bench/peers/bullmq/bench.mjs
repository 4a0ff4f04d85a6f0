// Peer benchmark: BullMQ (Node.js) against a private redis-server, the phases of
// `baton bench` (issue 10).
//
// Usage: REDIS_PORT=<port> [REDIS_HOST=127.0.0.1] [JOBS=20000] [CONCURRENCY=50]
//        [PHASES=add_bulk,process,add_single,latency,memory] [PAYLOAD_BYTES=0]
//        [RETENTION=none|default] [WORKERS=1] [BULK=1000] [RATE=1000]
//        [LATENCY_JOBS=5000] node bench.mjs
//
// Normally started by ../run.sh, which launches a throw-away redis-server on a free
// loopback port and passes REDIS_PORT. Prints ONE JSON object on stdout; progress goes
// to stderr. `node bench.mjs worker` is the worker process the phases start (see
// `workerMain`): workers run as separate processes so that their CPU and RSS can be read
// from /proc, as baton's `bench-worker` does.
//
// Phases (see ../README.md), in this order, each on its own queue but process, which
// drains what add_bulk added:
//   warm-up     tiny queue, loads Lua scripts and warms the JIT (not measured)
//   add_bulk    JOBS jobs via queue.addBulk() in sequential batches of BULK
//   process     WORKERS worker processes (concurrency each) with a no-op handler drain
//               JOBS waiting jobs; RETENTION=none sets removeOnComplete {count: 0},
//               default keeps BullMQ's default (every completed job kept)
//   add_single  JOBS/4 jobs via queue.add(), 50 adds in flight at any time
//   latency     one producer adds RATE jobs/s (each add awaited) for LATENCY_JOBS jobs
//               to a worker process keeping up; its handler records add → start
//   memory      used_memory delta / jobs for JOBS waiting jobs (bulk-added)
// Redis CPU = delta of (used_cpu_user + used_cpu_sys) from INFO cpu.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const require = createRequire(import.meta.url);
const BULLMQ_VERSION = require('bullmq/package.json').version;

function envInt(name, dflt, min = 1) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${v}`);
  return n;
}

const HOST = process.env.REDIS_HOST || '127.0.0.1';
if (!process.env.REDIS_PORT) {
  // Refuse to default to 6379: the benchmark must never touch the system Redis.
  console.error('REDIS_PORT is required (run via ../run.sh, which starts a private redis-server)');
  process.exit(2);
}
const PORT = envInt('REDIS_PORT', 0);
const JOBS = envInt('JOBS', 20000);
const CONCURRENCY = envInt('CONCURRENCY', 50);
const BATCH = envInt('BULK', 1000);
const WORKERS = envInt('WORKERS', 1);
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 0, 0);
const RATE = envInt('RATE', 1000);
const LATENCY_JOBS = envInt('LATENCY_JOBS', 5000);
const RETENTION = process.env.RETENTION || 'none';
if (!['none', 'default'].includes(RETENTION)) throw new Error(`RETENTION must be none or default, got ${RETENTION}`);
const ALL_PHASES = ['add_bulk', 'process', 'add_single', 'latency', 'memory'];
const PHASES = (process.env.PHASES || ALL_PHASES.join(',')).split(',').filter((p) => ALL_PHASES.includes(p));
const SINGLE_INFLIGHT = 50; // concurrent in-flight single adds
const SINGLE_JOBS = Math.max(1, Math.floor(JOBS / 4));
const DEADLINE_MS = envInt('DEADLINE_S', 600) * 1000;
const WARMUP = process.env.WARMUP !== '0';
const POLL_MS = 20; // how often the drain is checked (the same in every peer)

const log = (...a) => console.error('[bullmq-node]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

// BullMQ 6 treats ioredis as an optional peer dependency and cannot lazy-load
// it from native ESM, so construct the clients explicitly.
function conn(extra = {}) {
  return new IORedis({ host: HOST, port: PORT, maxRetriesPerRequest: null, ...extra });
}

// A payload of about `bytes` bytes of JSON, the same as baton bench's.
function payload(i, bytes) {
  if (bytes === 0) return { i };
  const bare = JSON.stringify({ i, pad: '' }).length;
  return { i, pad: 'x'.repeat(Math.max(0, bytes - bare)) };
}

const workerOpts = () => (RETENTION === 'none' ? { removeOnComplete: { count: 0 } } : {});

// ------------------------------------------------------------ worker process ---
// Builds a worker (connected, not running), prints `ready`, runs on a `go` line, and
// when stdin closes closes it and prints {"handled", "latency_ms"}.
async function workerMain() {
  const record = process.env.RECORD_LATENCY === '1';
  let handled = 0;
  const lat = [];
  const worker = new Worker(
    process.env.QUEUE,
    async (job) => {
      if (record) lat.push(nowUs() - job.data.t);
      handled++;
      return null;
    },
    { connection: conn(), concurrency: CONCURRENCY, autorun: false, ...workerOpts() },
  );
  worker.on('error', (err) => log('worker error:', err && err.message));
  await worker.waitUntilReady();
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  let runP;
  for await (const line of rl) {
    if (line.trim() === 'go' && !runP) runP = worker.run();
  }
  await worker.close();
  if (runP) await runP.catch(() => {});
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.floor((lat.length - 1) * p)] / 1000 : 0);
  process.stdout.write(
    JSON.stringify({ handled, latency_ms: { count: lat.length, p50: pct(0.5), p99: pct(0.99), max: pct(1) } }) + '\n',
  );
}

// ------------------------------------------------------------------ probes ---
const admin = conn();

async function redisSample() {
  const info = await admin.info('everything');
  const s = { cpu: 0, mem: 0, commands: 0, calls: {} };
  for (const line of info.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'used_cpu_user' || k === 'used_cpu_sys') s.cpu += Number.parseFloat(v);
    else if (k === 'used_memory') s.mem = Number(v);
    else if (k === 'total_commands_processed') s.commands = Number(v);
    else if (k.startsWith('cmdstat_')) s.calls[k.slice(8)] = Number(/calls=(\d+)/.exec(v)[1]);
  }
  return s;
}

// The change between two samples per job, as baton bench reports it.
function perJob(a, b, jobs) {
  const calls = Object.entries(b.calls)
    .map(([k, v]) => [k, (v - (a.calls[k] || 0)) / jobs])
    .filter(([, v]) => v > 0)
    .sort((x, y) => y[1] - x[1]);
  return {
    redis_cpu_us_per_job: Number((((b.cpu - a.cpu) * 1e6) / jobs).toFixed(2)),
    commands_per_job: (b.commands - a.commands) / jobs,
    calls_per_job: calls.reduce((s, [, v]) => s + v, 0),
    top_calls_per_job: calls.slice(0, 8),
  };
}

const CLK_TCK = 100; // USER_HZ on Linux
function procCpuS(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
function procRssKib(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}
const mib = (kib) => kib / 1024;

// ------------------------------------------------------------ worker procs ---
async function startWorkers(queueName, n, recordLatency = false) {
  const procs = [];
  for (let i = 0; i < n; i++) {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'worker'], {
      env: { ...process.env, QUEUE: queueName, RECORD_LATENCY: recordLatency ? '1' : '0' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const exited = new Promise((r) => child.on('exit', (code) => r(code)));
    procs.push({ child, lines, exited });
  }
  for (const p of procs) {
    const { value } = await p.lines.next();
    if (value !== 'ready') throw new Error(`worker process did not get ready (said ${value})`);
  }
  return {
    go: () => procs.forEach((p) => p.child.stdin.write('go\n')),
    cpuS: () => procs.reduce((s, p) => s + procCpuS(p.child.pid), 0),
    maxRssKib: () => Math.max(...procs.map((p) => procRssKib(p.child.pid))),
    stop: async () => {
      const reports = [];
      for (const p of procs) {
        p.child.stdin.end();
        const { value } = await p.lines.next();
        reports.push(JSON.parse(value));
        const code = await p.exited;
        if (code !== 0) throw new Error(`worker process exited ${code}`);
      }
      return reports;
    },
    kill: () => procs.forEach((p) => p.child.kill('SIGKILL')),
  };
}

async function waitDrained(queue) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const c = await queue.getJobCounts('waiting', 'active');
    if (c.waiting + c.active === 0) return;
    if (Date.now() > deadline) throw new Error(`deadline: not drained: ${JSON.stringify(c)}`);
    await sleep(POLL_MS);
  }
}

// ------------------------------------------------------------------ phases ---
async function addBulk(queue, n) {
  for (let start = 0; start < n; start += BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) batch.push({ name: 'j', data: payload(i, PAYLOAD_BYTES) });
    await queue.addBulk(batch);
  }
}

async function addSingle(queue, n, inflight) {
  let next = 0;
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await queue.add('j', payload(i, PAYLOAD_BYTES));
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
}

async function measureAdd(n, fn) {
  const r0 = await redisSample();
  const t0 = performance.now();
  await fn();
  const secs = (performance.now() - t0) / 1000;
  return { ...perJob(r0, await redisSample(), n), jobs_per_s: Math.round(n / secs), seconds: secs, jobs: n };
}

async function processPhase(queue) {
  const waiting = await queue.getWaitingCount();
  if (waiting < JOBS) await addBulk(queue, JOBS - waiting);
  const n = await queue.getWaitingCount();
  const w = await startWorkers(queue.name, WORKERS);
  try {
    const rssReady = w.maxRssKib();
    const r0 = await redisSample();
    const cpu0 = w.cpuS();
    const t0 = performance.now();
    w.go();
    let peak = rssReady;
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      await sleep(POLL_MS);
      peak = Math.max(peak, w.maxRssKib());
      const c = await queue.getJobCounts('waiting', 'active');
      if (c.waiting + c.active === 0) break;
      if (Date.now() > deadline) throw new Error(`deadline: not drained: ${JSON.stringify(c)}`);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = w.cpuS() - cpu0;
    const r1 = await redisSample();
    const end = w.maxRssKib();
    const handled = (await w.stop()).reduce((s, r) => s + r.handled, 0);
    const counts = await queue.getJobCounts('failed', 'completed');
    if (counts.failed) throw new Error(`${counts.failed} jobs failed`);
    log(`after process: completed jobs retained = ${counts.completed}`);
    return {
      ...perJob(r0, r1, n),
      jobs_per_s: Math.round(n / secs),
      seconds: secs,
      jobs: n,
      handled,
      workers: WORKERS,
      concurrency: CONCURRENCY,
      completed_retained: counts.completed,
      worker_cpu_us_per_job: (cpu * 1e6) / n,
      worker_rss_mib: { ready: mib(rssReady), peak: mib(peak), end: mib(end) },
    };
  } catch (e) {
    w.kill();
    throw e;
  }
}

async function latencyPhase(queue) {
  const w = await startWorkers(queue.name, 1, true);
  try {
    w.go();
    await sleep(1000); // let the worker start fetching
    const r0 = await redisSample();
    const cpu0 = w.cpuS();
    const t0 = performance.now();
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const wait = t0 + (i * 1000) / RATE - performance.now();
      if (wait > 0) await sleep(wait);
      await queue.add('j', { ...payload(i, PAYLOAD_BYTES), t: nowUs() });
    }
    const addSecs = (performance.now() - t0) / 1000;
    await waitDrained(queue);
    const cpu = w.cpuS() - cpu0;
    const r1 = await redisSample();
    const [rep] = await w.stop();
    return {
      ...perJob(r0, r1, LATENCY_JOBS),
      jobs: LATENCY_JOBS,
      offered_per_s: RATE,
      achieved_per_s: LATENCY_JOBS / addSecs,
      worker_cpu_us_per_job: (cpu * 1e6) / LATENCY_JOBS,
      latency_ms: rep.latency_ms,
    };
  } catch (e) {
    w.kill();
    throw e;
  }
}

async function memoryPhase(queue) {
  const r0 = await redisSample();
  await addBulk(queue, JOBS);
  await sleep(200);
  const r1 = await redisSample();
  return {
    jobs: JOBS,
    waiting: await queue.getWaitingCount(),
    bytes_per_job: (r1.mem - r0.mem) / JOBS,
    used_memory_before: r0.mem,
    used_memory_after: r1.mem,
  };
}

async function main() {
  const q = (name) => new Queue(name, { connection: conn() });
  const queue = q('bench');
  await queue.waitUntilReady();

  if (WARMUP) {
    const wq = q('warmup');
    await addBulk(wq, 200);
    await addSingle(wq, 200, SINGLE_INFLIGHT);
    const worker = new Worker('warmup', async () => null, { connection: conn(), concurrency: CONCURRENCY });
    await waitDrained(wq);
    await worker.close();
    await wq.obliterate({ force: true });
    await wq.close();
    log('warm-up done');
  }

  const out = {
    peer: 'bullmq-node',
    version: BULLMQ_VERSION,
    jobs: JOBS,
    concurrency: CONCURRENCY,
    payload_bytes: PAYLOAD_BYTES,
    retention: RETENTION,
    workers: WORKERS,
    phases: PHASES,
  };
  for (const phase of PHASES) {
    log(`${phase}: ${JOBS} jobs`);
    if (phase === 'add_bulk') out.add_bulk = { ...(await measureAdd(JOBS, () => addBulk(queue, JOBS))), batch: BATCH };
    if (phase === 'process') out.process = await processPhase(queue);
    if (phase === 'add_single') {
      const sq = q('bench-single');
      out.add_single = { ...(await measureAdd(SINGLE_JOBS, () => addSingle(sq, SINGLE_JOBS, SINGLE_INFLIGHT))), inflight: SINGLE_INFLIGHT };
      await sq.close();
    }
    if (phase === 'latency') {
      const lq = q('bench-lat');
      out.latency = await latencyPhase(lq);
      await lq.close();
    }
    if (phase === 'memory') {
      const mq = q('bench-mem');
      out.memory = await memoryPhase(mq);
      await mq.close();
    }
    log(phase, JSON.stringify(out[phase]));
  }
  await queue.close();
  await admin.quit();
  out.retention_detail = RETENTION === 'none'
    ? 'removeOnComplete {count:0} (worker option): completed jobs deleted on completion'
    : "BullMQ's default: every completed job kept";
  out.runtime = `node ${process.version}, ioredis ${require('ioredis/package.json').version}`;
  process.stdout.write(JSON.stringify(out) + '\n');
}

(process.argv[2] === 'worker' ? workerMain : main)().then(
  () => process.exit(0),
  (err) => {
    console.error('[bullmq-node] FAILED:', err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
