#!/usr/bin/env python3
"""Redis CPU per job of claim.lua and finish.lua, called directly (EVALSHA) at a given
batch size on jobs enqueued with `baton add-bulk`, measured from INFO commandstats:
each script's time per job, the commands inside it, and the rest (Lua, reply building,
AOF propagation).

Runs `--repeat` rounds and prints the median and the minimum per figure: on a shared
2-core VM one round varies by ±20 %, so compare medians of interleaved runs, and give
`--lua DIR` to compare another version of the scripts in the same session (e.g. a copy
of lua/ from the last commit). Needs `pip install redis` and a running redis-server.

Usage: BATON=target/release/baton bench/script_profile.py --port P [--batch 50]
       [--jobs 20000] [--keep none] [--repeat 5] [--lua DIR]
"""
import argparse, json, os, statistics, subprocess

import redis

ap = argparse.ArgumentParser()
ap.add_argument('--port', type=int, required=True)
ap.add_argument('--batch', type=int, default=50)
ap.add_argument('--jobs', type=int, default=20000)
ap.add_argument('--keep', default='none', help='completed retention of the jobs')
ap.add_argument('--repeat', type=int, default=5)
ap.add_argument('--lua', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lua'))
a = ap.parse_args()
r = redis.Redis(port=a.port)
common = open(os.path.join(a.lua, 'common.lua')).read()


def load(name):
    first, body = open(os.path.join(a.lua, name)).read().split('\n', 1)
    return r.script_load(first + '\n' + common + '\n' + body)


claim, fin = load('claim.lua'), load('finish.lua')
q = 'prof'
p = 'baton:{%s}:' % q
K = lambda s: p + s
lines = '\n'.join(json.dumps({"name": "n", "data": i, "keep_completed": a.keep}) for i in range(a.jobs))
baton = os.environ.get('BATON', 'target/release/baton')


def stats():
    return {k: (v['calls'], v['usec']) for k, v in r.info('commandstats').items()}


def delta(x, y):
    out = {}
    for k, (c, u) in y.items():
        c0, u0 = x.get(k, (0, 0))
        if c - c0:
            out[k] = (c - c0, u - u0)
    return out


def one_round():
    r.flushall()
    subprocess.run([baton, '--redis-url', f'redis://127.0.0.1:{a.port}', 'add-bulk', q, '-'],
                   input=lines.encode(), check=True, stdout=subprocess.DEVNULL)
    claimed = []
    t0 = stats()
    while True:
        out = r.evalsha(claim, 8, K('wait'), K('prioritized'), K('delayed'), K('active'), K('meta'),
                        K('wake'), K('failed'), K('limiter'), p, a.batch, 'w1', 30000)
        n = (len(out) - 2) // 8
        if n == 0:
            break
        claimed += [(out[2 + i * 8].decode(), out[3 + i * 8]) for i in range(n)]
    t1 = stats()
    for i in range(0, len(claimed), a.batch):
        chunk = claimed[i:i + a.batch]
        args = [p, len(chunk)]
        for id, tok in chunk:
            args += [id, tok, 'c', '\x90', 0]
        r.evalsha(fin, 9, K('active'), K('wait'), K('prioritized'), K('delayed'), K('completed'),
                  K('failed'), K('cancelled'), K('meta'), K('wake'), *args)
    t2 = stats()
    return len(claimed), delta(t0, t1), delta(t1, t2)


rounds = [one_round() for _ in range(a.repeat)]
for idx, label in ((1, f'claim (batch {a.batch})'), (2, f'finish complete (batch {a.batch}, keep {a.keep})')):
    per = {}
    for n, *d in rounds:
        for k, (c, u) in d[idx - 1].items():
            if k.startswith('cmdstat_info') or k.startswith('cmdstat_config'):
                continue
            per.setdefault(k, []).append(u / n)
    ev = per.pop('cmdstat_evalsha')
    inner = [sum(v[i] for v in per.values() if len(v) > i) for i in range(len(ev))]
    over = [e - s for e, s in zip(ev, inner)]
    print(f"{label}: evalsha median {statistics.median(ev):.2f} (min {min(ev):.2f}) us/job; "
          f"inner commands {statistics.median(inner):.2f}; Lua and call overhead {statistics.median(over):.2f}")
    for k, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))[:6]:
        print(f"   {k[8:]} {statistics.median(v):.2f} us/job")
