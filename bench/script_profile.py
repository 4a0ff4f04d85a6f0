#!/usr/bin/env python3
"""Redis CPU per job of add.lua, claim.lua and finish.lua, called directly (EVALSHA) as
a worker calls them: claim a batch, finish that batch, again, so the lease table stays
as small as in real use. Measured from INFO commandstats: each script's time per job,
the commands inside it, and the rest (Lua, reply building); and from INFO cpu (the
whole server: scripts, networking, AOF) per job, in a second pass without INFO calls.

Jobs are added by add.lua itself (batches of 100, options as `baton add` encodes them),
so a copy of lua/ is measured end to end without a rebuild. Runs `--repeat` rounds and
prints the median and the minimum per figure: on a shared 2-core VM one round varies by
±20 % (commandstats times are wall time: a preempted Redis looks slow), so compare
medians of interleaved versions (`--lua DIR --lua DIR2`), or count instructions instead
(bench/script_instructions.py). Needs `pip install redis` and a running redis-server.
EVENTS=N in the environment turns the queue's events stream on (meta 'events' = N, the
stream's length cap) before the jobs are added: the cost of events on.

Usage: bench/script_profile.py --port P [--batch 50] [--jobs 20000] [--keep none]
       [--repeat 5] [--lua DIR ...]
"""
import argparse, os, re, statistics

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
# The options `baton add` writes by default (attempts 3, exponential backoff 1s..10m
# with jitter, no timeout): the compact MessagePack array of RunOptions::encode. Before
# 2026-11-30 they were a 71-byte map with field names (OPTS_NAMED), which made every job
# hash a hash table (a value over hash-max-listpack-value, 64 bytes).
OPTS = bytes.fromhex('96030101cd03e8ce000927c0c3c0')
OPTS_NAMED = bytes.fromhex('83a8617474656d70747303a76261636b6f666684a474797065ab6578706f6e656e746961'
                           '6ca462617365cd03e8a36d6178ce000927c0a66a6974746572c3a774696d656f7574c0')
Q = 'prof'
P = 'baton:{%s}:' % Q


def _words(text):
    return {w for line in text.splitlines() if not line.lstrip().startswith('--')
            for w in re.findall(r'[A-Za-z_][A-Za-z0-9_]*', line)}


def _defined(line):
    m = re.match(r'local (?:function )?([A-Za-z_][A-Za-z0-9_, ]*)', line)
    if m:
        return [n.strip() for n in m.group(1).split(',') if n.strip()]
    m = re.match(r'([A-Za-z_][A-Za-z0-9_]*) = ', line)
    return [m.group(1)] if m else []


B32 = '0123456789abcdefghijklmnopqrstuv'


def job_id(i):
    """Job i's id: `j<i>`, or with IDS=short one as baton generates them (src/job/id.rs:
    a 12-character prefix, '.', a base-32 counter)."""
    ids = os.environ.get('IDS', '')
    if not ids.startswith('short'):
        return f'j{i}'
    # IDS=short64: a base-64 counter instead (an experiment: 64 ids a stem).
    digits = B32 + 'wxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_' if ids == 'short64' else B32
    d = ''
    while True:
        d, i = digits[i % len(digits)] + d, i // len(digits)
        if i == 0:
            return 'Xq3kP0aQ9zLm.' + d


def needed(common, body):
    """The helpers `body` uses, as src/scripts/prelude.rs assembles a script (the same
    rules: a top-level statement per `local`/assignment line, kept when a kept text
    names what it defines)."""
    units, cur = [], [[], '']
    for line in common.splitlines(keepends=True):
        d = _defined(line)
        if d:
            units.append(cur)
            cur = [d, '']
        cur[1] += line
    units.append(cur)
    keep = [not u[0] for u in units]
    want = _words(body)
    more = True
    while more:
        more = False
        for i, (d, text) in enumerate(units):
            if not keep[i] and want.intersection(d):
                keep[i], more = True, True
                want |= _words(text)
    return ''.join(u[1] for u, k in zip(units, keep) if k)


def K(s):
    return P + s


def keep_arg(keep):
    """The `keep` argument of add.lua for a completed retention of none, all or a count."""
    kc = {'none': '0', 'all': '-1'}.get(keep, keep)
    return f'{int(kc)}:0:10000:604800000'


class Profile:
    """The add / process phases of one version of the scripts on one Redis."""

    def __init__(self, r, lua, jobs=20000, batch=50, keep='none', strict=True, dedup=None):
        self.r, self.lua, self.jobs, self.batch = r, lua, jobs, batch
        # 's' or 't': every job added with a dedup key of its own in that mode (simple,
        # ttl 60s), so every add takes a key and every finish releases it (simple).
        self.dedup = dedup
        self.keep, self.strict = keep_arg(keep), strict
        self.quiet = False  # no INFO commandstats calls (for INFO cpu alone)
        self.groups = 0  # > 0: jobs spread round-robin over this many groups (g0, g1, ...)
        self.flow = 0  # > 0: jobs added as flows (flow.lua) of one parent and this many children
        add_text = open(os.path.join(lua, 'add.lua')).read()
        # Scripts since session 8 take a job's name, opts and data as one spec argument
        # (src/job/spec.rs) and reply 6 values per claimed job instead of 8.
        self.spec = 'groups of 6' in add_text
        self.fresh = self.spec or 'groups of 8' in add_text
        self.width = 6 if self.spec else 8
        self.opts = OPTS if os.environ.get('OPTS') != 'named' else OPTS_NAMED
        # Scripts with the events stream take its key last (KEYS of add, claim, finish).
        self.ev = [K('events')] if '[6] events' in open(os.path.join(lua, 'add.lua')).read() else []
        # Scripts with the lease table take the leases HASH after events (claim, finish).
        self.lk = [K('leases')] if os.path.exists(os.path.join(lua, 'lease.lua')) else []
        # Scripts since session 10 take completions as groups of 3 (id, token, result)
        # ahead of the count of the other outcomes.
        self.c3 = 'groups of 3' in open(os.path.join(lua, 'finish.lua')).read()
        # Claims since session 11 reply the first token, then id and record a job.
        self.records = 'first token' in open(os.path.join(lua, 'claim.lua')).read()
        # Since session 11 a worker sends the completions of jobs kept by none as
        # forgettable ("c:f"); here too when every job is such (no groups, flows, dedup).
        self.forgettable = 'forgettable' in open(os.path.join(lua, 'finish.lua')).read()

    def load(self, name):
        # Loaded once per Profile: a SCRIPT LOAD compiles the script (about 3 M
        # instructions for claim.lua), which is not a cost of the jobs.
        self.loaded = getattr(self, 'loaded', {})
        if name not in self.loaded:
            self.loaded[name] = self._load(name)
        return self.loaded[name]

    def _load(self, name):
        common = open(os.path.join(self.lua, 'common.lua')).read()
        if os.path.exists(os.path.join(self.lua, 'lease.lua')):  # since the lease table
            common += '\n' + open(os.path.join(self.lua, 'lease.lua')).read()
        if os.path.exists(os.path.join(self.lua, 'compact.lua')):  # since compact jobs
            common += '\n' + open(os.path.join(self.lua, 'compact.lua')).read()
        first, body = open(os.path.join(self.lua, name)).read().split('\n', 1)
        if os.environ.get('SHAKE', '1') == '1':  # SHAKE=0: every helper, as before session 10
            common = needed(common, body)
        return self.r.script_load(first + '\n' + common + '\n' + body)

    def stats(self):
        if self.quiet:
            return {}
        return {k: (v['calls'], v['usec']) for k, v in self.r.info('commandstats').items()}

    def cpu(self):
        c = self.r.info('cpu')
        return c['used_cpu_user'] + c['used_cpu_sys']

    @staticmethod
    def acc(total, x, y):
        for k, (c, u) in y.items():
            c0, u0 = x.get(k, (0, 0))
            if c - c0:
                t = total.setdefault(k, [0, 0])
                t[0] += c - c0
                t[1] += u - u0

    def add_flows(self, into):
        """Adds the jobs as flows: one parent (the first of each group) waiting for
        `self.flow` children, all on this queue."""
        sha = self.load('flow.lua')
        per = self.flow + 1
        assert self.jobs % per == 0, 'jobs must be a multiple of flow + 1'
        for b in range(0, self.jobs, per):
            pid, args = f'j{b}', [per]
            for i in range(b, b + per):
                child = i > b
                keep = self.keep + (f'|pf0:{len(pid)}:{pid}' if child else '')
                args += [P, f'j{i}', *self.job_args(i), 0, 0,
                         keep, 1 if child else 0, 0 if child else self.flow, '1']
            x = self.stats()
            self.r.evalsha(sha, 1, K('meta'), *args)
            self.acc(into, x, self.stats())

    def job_args(self, i):
        """Job i's name, data and opts as the scripts take them: one spec, or three."""
        data = b'\x81\xa1i' + i.to_bytes(4, 'big')
        pad = int(os.environ.get('PAYLOAD', '0'))  # PAYLOAD=1024: a MessagePack bin of that many bytes
        if pad:
            data = b'\xc5' + pad.to_bytes(2, 'big') + bytes([i % 251]) * pad
        if self.spec:
            return [b'n\x00' + str(len(self.opts)).encode() + b':' + self.opts + data]
        return ['n', data, self.opts]

    def add(self, into):
        if self.flow:
            return self.add_flows(into)
        sha = self.load('add.lua')
        if os.environ.get('EVENTS'):
            self.r.hset(K('meta'), 'events', os.environ['EVENTS'])
        for b in range(0, self.jobs, 100):
            args = [P, 100]
            for i in range(b, b + 100):
                keep = self.keep + (f'|g{i % self.groups}' if self.groups else '')
                args += [job_id(i), *self.job_args(i), 0, 0, keep]
                if self.dedup:
                    args.append(f"1{self.dedup}{60000 if self.dedup == 't' else 0}:k{i}")
                elif self.fresh:
                    args.append('1')
            x = self.stats()
            keys = [K('wait'), K('prioritized'), K('delayed'), K('meta'), K('wake')] + self.ev
            self.r.evalsha(sha, len(keys), *keys, *args)
            self.acc(into, x, self.stats())

    def process(self, s_claim, s_fin):
        claim, fin = self.load('claim.lua'), self.load('finish.lua')
        n = 0
        while True:
            x = self.stats()
            keys = [K('wait'), K('prioritized'), K('delayed'), K('active'), K('meta'), K('wake'),
                    K('failed'), K('limiter')] + self.ev + self.lk
            out = self.r.evalsha(claim, len(keys), *keys, P, self.batch, 'w1', 30000)
            y = self.stats()
            self.acc(s_claim, x, y)
            got = self.leased(out)
            if not got:
                break
            n += len(got)
            args = [P, self.count_arg(len(got))]
            for j in got:
                args += [j[0], j[1], '\x90'] if self.c3 else [j[0], j[1], 'c', '\x90', 0]
            if self.c3:
                args.append(0)
            keys = [K('active'), K('wait'), K('prioritized'), K('delayed'), K('completed'),
                    K('failed'), K('cancelled'), K('meta'), K('wake')] + self.ev + self.lk
            out = self.r.evalsha(fin, len(keys), *keys, *args)
            assert all(v == 1 for v in out) or not self.strict, out
            self.acc(s_fin, y, self.stats())
        assert n == self.jobs, (n, self.jobs)

    def claim_all(self):
        """Claims every job, batch by batch, and returns the leases (id, token)."""
        claim = self.load('claim.lua')
        got = []
        while True:
            keys = [K('wait'), K('prioritized'), K('delayed'), K('active'), K('meta'), K('wake'),
                    K('failed'), K('limiter')] + self.ev + self.lk
            out = self.r.evalsha(claim, len(keys), *keys, P, self.batch, 'w1', 30000)
            if len(out) == (3 if self.records else 2):
                return got
            got += [(j[0], j[1]) for j in self.leased(out)]

    def count_arg(self, n):
        """finish.lua's ARGV[2] for n completions: "n:n" when all are forgettable."""
        plain = re.match(r'^0:\d+:-?\d+:\d+$', self.keep)
        if self.forgettable and plain and not (self.groups or self.flow or self.dedup):
            return f'{n}:{n}'
        return n

    def leased(self, out):
        """(id, token) of each job a claim reply leased."""
        if self.records:
            return [(out[3 + 2 * i], out[2] + i) for i in range((len(out) - 3) // 2)]
        w = self.width
        return [out[2 + i * w:2 + (i + 1) * w] for i in range((len(out) - 2) // w)]

    def finish_all(self, leases):
        """Completes `leases`, batch by batch."""
        fin = self.load('finish.lua')
        for i in range(0, len(leases), self.batch):
            args = [P, self.count_arg(len(leases[i:i + self.batch]))]
            for id, tok in leases[i:i + self.batch]:
                args += [id, tok, '\x90'] if self.c3 else [id, tok, 'c', '\x90', 0]
            if self.c3:
                args.append(0)
            keys = [K('active'), K('wait'), K('prioritized'), K('delayed'), K('completed'),
                    K('failed'), K('cancelled'), K('meta'), K('wake')] + self.ev + self.lk
            self.r.evalsha(fin, len(keys), *keys, *args)

    def round(self):
        self.r.flushall()
        s_add, s_claim, s_fin = {}, {}, {}
        c0 = self.cpu()
        self.add(s_add)
        c1 = self.cpu()
        self.process(s_claim, s_fin)
        c2 = self.cpu()
        return {'add': s_add, 'claim': s_claim, 'finish': s_fin,
                'cpu_add': (c1 - c0) * 1e6 / self.jobs, 'cpu_process': (c2 - c1) * 1e6 / self.jobs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--batch', type=int, default=50)
    ap.add_argument('--jobs', type=int, default=20000)
    ap.add_argument('--keep', default='none', help='completed retention: none, all or a count')
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--lua', action='append', default=[])
    ap.add_argument('--any-outcome', action='store_true',
                    help='experiments: do not insist that every outcome lands')
    a = ap.parse_args()
    r = redis.Redis(port=a.port)
    profs = [Profile(r, d, a.jobs, a.batch, a.keep, not a.any_outcome)
             for d in (a.lua or [os.path.join(HERE, '..', 'lua')])]
    rounds = {p.lua: [] for p in profs}
    quiet = {p.lua: [] for p in profs}
    for _ in range(a.repeat):
        for p in profs:  # interleaved, so drift hits every version alike
            rounds[p.lua].append(p.round())
            p.quiet = True
            quiet[p.lua].append(p.round())
            p.quiet = False
    for p in profs:
        print(f'== {p.lua} (batch {a.batch}, keep {a.keep}, {a.repeat} rounds, median (min) us/job)')
        for what in ('cpu_add', 'cpu_process'):
            v = [x[what] for x in quiet[p.lua]]
            print(f'  INFO cpu {what[4:]}: {statistics.median(v):.2f} ({min(v):.2f})')
        for label in ('add', 'claim', 'finish'):
            per = {}
            for x in rounds[p.lua]:
                for k, (c, u) in x[label].items():
                    if k.startswith('cmdstat_info') or k.startswith('cmdstat_script'):
                        continue
                    per.setdefault(k, []).append(u / a.jobs)
            ev = per.pop('cmdstat_evalsha')
            inner = [sum(v[i] for v in per.values() if len(v) > i) for i in range(len(ev))]
            over = [e - s for e, s in zip(ev, inner)]
            top = ', '.join(f'{k[8:]} {statistics.median(v):.2f}'
                            for k, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))[:6])
            print(f'  {label}: {statistics.median(ev):.2f} ({min(ev):.2f}); commands '
                  f'{statistics.median(inner):.2f} [{top}]; Lua+call {statistics.median(over):.2f}')


if __name__ == '__main__':
    main()
