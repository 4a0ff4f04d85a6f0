// Reads JSON lines from run.sh (stdin or file arguments) and prints, per peer,
// one JSON line with the median of each metric over the runs.
//   RUNS=3 bench/peers/run.sh | node bench/peers/median.mjs
import { readFileSync } from 'node:fs';

const text = process.argv.length > 2
  ? process.argv.slice(2).map((f) => readFileSync(f, 'utf8')).join('\n')
  : readFileSync(0, 'utf8');

const byPeer = new Map();
for (const line of text.split('\n')) {
  const t = line.trim();
  if (!t.startsWith('{')) continue;
  const r = JSON.parse(t);
  if (!byPeer.has(r.peer)) byPeer.set(r.peer, []);
  byPeer.get(r.peer).push(r);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

for (const [peer, runs] of byPeer) {
  const out = { peer, version: runs[0].version, jobs: runs[0].jobs, concurrency: runs[0].concurrency, runs: runs.length };
  for (const phase of ['add_bulk', 'add_single', 'process']) {
    out[phase] = {
      jobs_per_s: Math.round(median(runs.map((r) => r[phase].jobs_per_s))),
      redis_cpu_us_per_job: Number(median(runs.map((r) => r[phase].redis_cpu_us_per_job)).toFixed(2)),
      all_jobs_per_s: runs.map((r) => r[phase].jobs_per_s),
      all_redis_cpu_us_per_job: runs.map((r) => r[phase].redis_cpu_us_per_job),
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
