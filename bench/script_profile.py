#!/usr/bin/env python3
"""Redis CPU per job of add.lua, claim.lua and finish.lua, called directly (EVALSHA) as
a worker calls them: claim a batch, finish that batch, again, so the lease table stays
as small as in real use. Measured from INFO commandstats: each script's time per job,
the commands inside it, and the rest (Lua, reply building); and from INFO cpu (the
whole server: scripts, networking, AOF) per job.

Jobs are added by add.lua itself (batches of 100, options as `baton add-bulk` encodes
them), so a copy of lua/ with another data model is measured end to end without a
rebuild. Runs `--repeat` rounds and prints the median and the minimum per figure: on a
shared 2-core VM one round varies by ±20 %, so compare medians of interleaved runs
(`--lua DIR --lua DIR2`). Needs `pip install redis` and a running redis-server.

Usage: bench/script_profile.py --port P [--batch 50] [--jobs 20000] [--keep none]
       [--repeat 5] [--lua DIR ...]
"""
import argparse, os, statistics

import redis

ap = argparse.ArgumentParser()
ap.add_argument('--port', type=int, required=True)
ap.add_argument('--batch', type=int, default=50)
ap.add_argument('--jobs', type=int, default=20000)
ap.add_argument('--keep', default='none', help='completed retention: none, all or a count')
ap.add_argument('--repeat', type=int, default=5)
ap.add_argument('--lua', action='append', default=[])
ap.add_argument('--any-outcome', action='store_true', help='experiments: do not insist every finish lands')
a = ap.parse_args()
if not a.lua:
    a.lua = [os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lua')]
r = redis.Redis(port=a.port)
# The options `baton add` writes by default (attempts 3, exponential backoff), MessagePack.
OPTS = bytes.fromhex('83a8617474656d70747303a76261636b6f666684a474797065ab6578706f6e656e7469616ca462617365cd03e8a36d6178ce000927c0a66a6974746572c3a774696d656f7574c0')
KEEP = {'none': '0:0:10000:604800000', 'all': '-1:0:10000:604800000'}.get(a.keep)
if KEEP is None:
    KEEP = f'{int(a.keep)}:0:10000:604800000'


def load(d, name):
    common = open(os.path.join(d, 'common.lua')).read()
    first, body = open(os.path.join(d, name)).read().split('\n', 1)
    return r.script_load(first + '\n' + common + '\n' + body)


q = 'prof'
p = 'baton:{%s}:' % q
K = lambda s: p + s


QUIET = False  # a pass without INFO commandstats calls, for INFO cpu alone


def stats():
    if QUIET:
        return {}
    return {k: (v['calls'], v['usec']) for k, v in r.info('commandstats').items()}


def cpu():
    c = r.info('cpu')
    return c['used_cpu_user'] + c['used_cpu_sys']


def acc(total, x, y):
    for k, (c, u) in y.items():
        c0, u0 = x.get(k, (0, 0))
        if c - c0:
            t = total.setdefault(k, [0, 0])
            t[0] += c - c0
            t[1] += u - u0


def fresh_flag(d):
    """add.lua takes a `fresh` flag per job (groups of 8) since 2026-11-30."""
    return 'groups of 8' in open(os.path.join(d, 'add.lua')).read()


def one_round(d):
    add, claim, fin = load(d, 'add.lua'), load(d, 'claim.lua'), load(d, 'finish.lua')
    fresh = fresh_flag(d)
    r.flushall()
    s_add, s_claim, s_fin = {}, {}, {}
    c0 = cpu()
    for b in range(0, a.jobs, 100):
        args = [p, 100]
        for i in range(b, b + 100):
            args += [f'j{i}', 'n', b'\x81\xa1i' + i.to_bytes(4, 'big'), OPTS, 0, 0, KEEP]
            if fresh:
                args.append('1')
        x = stats()
        r.evalsha(add, 5, K('wait'), K('prioritized'), K('delayed'), K('meta'), K('wake'), *args)
        acc(s_add, x, stats())
    c1 = cpu()
    n = 0
    while True:
        x = stats()
        keys = [K('wait'), K('prioritized'), K('delayed'), K('active'), K('meta'), K('wake'),
                K('failed'), K('limiter')]
        out = r.evalsha(claim, len(keys), *keys, p, a.batch, 'w1', 30000)
        y = stats()
        acc(s_claim, x, y)
        w = 8
        got = [out[2 + i * w:2 + (i + 1) * w] for i in range((len(out) - 2) // w)]
        if not got:
            break
        n += len(got)
        args = [p, len(got)]
        for j in got:
            args += [j[0], j[1], 'c', '\x90', 0]
        keys = [K('active'), K('wait'), K('prioritized'), K('delayed'), K('completed'),
                K('failed'), K('cancelled'), K('meta'), K('wake')]
        out = r.evalsha(fin, len(keys), *keys, *args)
        assert all(x == 1 for x in out) or a.any_outcome, out
        acc(s_fin, y, stats())
    c2 = cpu()
    assert n == a.jobs, (n, a.jobs)
    return {'add': s_add, 'claim': s_claim, 'finish': s_fin,
            'cpu_add': (c1 - c0) * 1e6 / n, 'cpu_process': (c2 - c1) * 1e6 / n}


rounds = {d: [] for d in a.lua}
quiet = {d: [] for d in a.lua}
for _ in range(a.repeat):
    for d in a.lua:  # interleaved, so drift hits every version alike
        rounds[d].append(one_round(d))
        QUIET = True
        quiet[d].append(one_round(d))
        QUIET = False
for d in a.lua:
    print(f'== {d} (batch {a.batch}, keep {a.keep}, {a.repeat} rounds, median (min) us/job)')
    rs = rounds[d]
    for what in ('cpu_add', 'cpu_process'):
        v = [x[what] for x in quiet[d]]
        print(f'  INFO cpu {what[4:]}: {statistics.median(v):.2f} ({min(v):.2f})')
    for label in ('add', 'claim', 'finish'):
        per = {}
        for x in rs:
            for k, (c, u) in x[label].items():
                if k.startswith('cmdstat_info') or k.startswith('cmdstat_script'):
                    continue
                per.setdefault(k, []).append(u / a.jobs)
        ev = per.pop('cmdstat_evalsha')
        inner = [sum(v[i] for v in per.values() if len(v) > i) for i in range(len(ev))]
        over = [e - s for e, s in zip(ev, inner)]
        top = ', '.join(f'{k[8:]} {statistics.median(v):.2f}'
                        for k, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))[:6])
        print(f'  {label}: {statistics.median(ev):.2f} ({min(ev):.2f}); commands {statistics.median(inner):.2f} '
              f'[{top}]; Lua+call {statistics.median(over):.2f}')
