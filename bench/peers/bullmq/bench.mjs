// Peer benchmark: BullMQ (Node.js) against a private redis-server.
//
// Usage: REDIS_PORT=<port> [REDIS_HOST=127.0.0.1] [JOBS=20000] [CONCURRENCY=50] node bench.mjs
//
// Normally started by ../run.sh, which launches a throw-away redis-server on a
// free loopback port and passes REDIS_PORT. Prints ONE JSON object on stdout;
// progress goes to stderr.
//
// Phases (see ../README.md):
//   warm-up     tiny queue, loads Lua scripts and warms the JIT (not measured)
//   add_bulk    N jobs via queue.addBulk() in sequential batches of 100
//   process     Worker(concurrency) with a no-op handler drains those N jobs;
//               completed jobs are removed (removeOnComplete {count: 0})
//   add_single  N/4 jobs via queue.add(), 50 adds in flight at any time
// Redis CPU = delta of (used_cpu_user + used_cpu_sys) from INFO cpu.

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const require = createRequire(import.meta.url);
const BULLMQ_VERSION = require('bullmq/package.json').version;

function envInt(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
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
const BATCH = 100; // addBulk batch size
const SINGLE_INFLIGHT = 50; // concurrent in-flight single adds
const SINGLE_JOBS = Math.max(1, Math.floor(JOBS / 4));
const DEADLINE_MS = envInt('DEADLINE_S', 600) * 1000;
const WARMUP = process.env.WARMUP !== '0';

const log = (...a) => console.error('[bullmq-node]', ...a);

// BullMQ 6 treats ioredis as an optional peer dependency and cannot lazy-load
// it from native ESM, so construct the clients explicitly.
function conn(extra = {}) {
  return new IORedis({ host: HOST, port: PORT, maxRetriesPerRequest: null, ...extra });
}

const admin = conn();

async function redisCpuSeconds() {
  const info = await admin.info('cpu');
  let user = NaN;
  let sys = NaN;
  for (const line of info.split(/\r?\n/)) {
    const [k, v] = line.split(':');
    if (k === 'used_cpu_user') user = Number.parseFloat(v);
    if (k === 'used_cpu_sys') sys = Number.parseFloat(v);
  }
  if (!Number.isFinite(user) || !Number.isFinite(sys)) throw new Error(`bad INFO cpu: ${info}`);
  return user + sys;
}

async function measure(jobs, fn) {
  const cpu0 = await redisCpuSeconds();
  const t0 = performance.now();
  await fn();
  const t1 = performance.now();
  const cpu1 = await redisCpuSeconds();
  const secs = (t1 - t0) / 1000;
  return {
    jobs_per_s: Math.round(jobs / secs),
    redis_cpu_us_per_job: Number((((cpu1 - cpu0) * 1e6) / jobs).toFixed(2)),
    seconds: Number(secs.toFixed(3)),
  };
}

async function addBulk(queue, n) {
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH);
    const batch = [];
    for (let i = start; i < end; i++) batch.push({ name: 'j', data: { i } });
    await queue.addBulk(batch);
  }
}

async function addSingle(queue, n, inflight) {
  let next = 0;
  const lane = async () => {
    while (true) {
      const i = next++;
      if (i >= n) return;
      await queue.add('j', { i });
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
}

// Run a worker until `n` jobs have completed; returns when done (or throws at deadline).
// `onStart` is called right before the worker starts fetching (after connections are ready).
async function drain(queueName, n, concurrency, onStart = async () => {}) {
  let completed = 0;
  let failed = 0;
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  const worker = new Worker(queueName, async () => null, {
    connection: conn(),
    concurrency,
    autorun: false,
    removeOnComplete: { count: 0 },
  });
  worker.on('completed', () => {
    completed++;
    if (completed + failed >= n) resolveDone();
  });
  worker.on('failed', () => {
    failed++;
    if (completed + failed >= n) resolveDone();
  });
  worker.on('error', (err) => log('worker error:', err && err.message));
  await worker.waitUntilReady();
  await onStart();
  const runP = worker.run();
  let timer;
  const deadline = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`deadline: only ${completed}/${n} completed`)), DEADLINE_MS);
  });
  try {
    await Promise.race([done, deadline]);
  } finally {
    clearTimeout(timer);
  }
  if (failed > 0) throw new Error(`${failed} jobs failed`);
  return async () => {
    await worker.close();
    await runP.catch(() => {});
  };
}

async function main() {
  const queue = new Queue('bench', { connection: conn() });
  await queue.waitUntilReady();

  if (WARMUP) {
    const wq = new Queue('warmup', { connection: conn() });
    await addBulk(wq, 200);
    await addSingle(wq, 200, SINGLE_INFLIGHT);
    const close = await drain('warmup', 400, CONCURRENCY);
    await close();
    await wq.obliterate({ force: true });
    await wq.close();
    log('warm-up done');
  }

  log(`add_bulk: ${JOBS} jobs in batches of ${BATCH}`);
  const add_bulk = await measure(JOBS, () => addBulk(queue, JOBS));
  log('add_bulk', JSON.stringify(add_bulk));

  const waiting = await queue.getWaitingCount();
  if (waiting !== JOBS) throw new Error(`expected ${JOBS} waiting, found ${waiting}`);

  log(`process: ${JOBS} jobs, concurrency ${CONCURRENCY}`);
  let cpu0;
  let t0;
  const close = await drain('bench', JOBS, CONCURRENCY, async () => {
    cpu0 = await redisCpuSeconds();
    t0 = performance.now();
  });
  const t1 = performance.now();
  const cpu1 = await redisCpuSeconds();
  const psecs = (t1 - t0) / 1000;
  const processRes = {
    jobs_per_s: Math.round(JOBS / psecs),
    redis_cpu_us_per_job: Number((((cpu1 - cpu0) * 1e6) / JOBS).toFixed(2)),
    seconds: Number(psecs.toFixed(3)),
  };
  await close();
  log('process', JSON.stringify(processRes));

  const counts = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
  if (counts.waiting || counts.active || counts.failed || counts.delayed) {
    throw new Error(`queue not drained: ${JSON.stringify(counts)}`);
  }
  log(`after process: completed jobs retained = ${counts.completed}`);

  log(`add_single: ${SINGLE_JOBS} jobs, ${SINGLE_INFLIGHT} in flight`);
  const add_single = await measure(SINGLE_JOBS, () => addSingle(queue, SINGLE_JOBS, SINGLE_INFLIGHT));
  add_single.jobs = SINGLE_JOBS;
  add_single.inflight = SINGLE_INFLIGHT;
  log('add_single', JSON.stringify(add_single));

  await queue.obliterate({ force: true });
  await queue.close();
  await admin.quit();

  add_bulk.batch = BATCH;
  const out = {
    peer: 'bullmq-node',
    version: BULLMQ_VERSION,
    jobs: JOBS,
    concurrency: CONCURRENCY,
    add_bulk,
    add_single,
    process: processRes,
    retention: 'removeOnComplete {count:0} (worker option): completed jobs deleted on completion',
    runtime: `node ${process.version}, ioredis ${require('ioredis/package.json').version}`,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error('[bullmq-node] FAILED:', err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
