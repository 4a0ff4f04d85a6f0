#!/usr/bin/env python3
"""Instructions Redis executes per job for add, claim + finish: steadier than CPU time on
a shared machine (callgrind counts instructions, whatever else runs). Starts its own
redis-server under `valgrind --tool=callgrind` (AOF on, as in production), drives the
scripts of each `--lua DIR` as bench/script_profile.py does (claim a batch, finish it),
and reads the instruction count of each phase (callgrind_control --zero / --dump).

Usage: bench/script_instructions.py [--jobs 2000] [--batch 50] [--keep none]
       [--groups N] [--flow N] [--lua DIR ...] [--dedup s|t]      (needs valgrind and `pip install redis`)
"""
import argparse, glob, os, re, shutil, socket, subprocess, sys, tempfile, time

import redis

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument('--jobs', type=int, default=2000)
ap.add_argument('--batch', type=int, default=50)
ap.add_argument('--keep', default='none')
ap.add_argument('--lua', action='append', default=[])
ap.add_argument('--dedup', choices=['s', 't'], help='every job with a dedup key of its own: s simple, t ttl')
ap.add_argument('--groups', type=int, default=0, help='spread the jobs over this many groups (job option group)')
ap.add_argument('--flow', type=int, default=0, help='add the jobs as flows of one parent and this many children (jobs: a multiple of flow + 1)')
ap.add_argument('--config', action='append', default=[], help='NAME=VALUE: CONFIG SET before the runs (experiments)')
ap.add_argument('--meta', action='append', default=[], help="FIELD=VALUE: the queue's meta field set before each phase "
                '(concurrency=1000000, rate=1000000:1000: limits on but never reached)')
ap.add_argument('--annotate', type=int, default=0, help='print the N functions with the most instructions per phase '
                '(and keep each phase\'s profile as /tmp/cg-<n-th --lua>-<phase>.out)')
a = ap.parse_args()
if not a.lua:
    a.lua = [os.path.join(here, '..', 'lua')]

s = socket.socket()
s.bind(('127.0.0.1', 0))
port = s.getsockname()[1]
s.close()
d = tempfile.mkdtemp(prefix='baton-cg-')
vg = subprocess.Popen(['valgrind', '--tool=callgrind', f'--callgrind-out-file={d}/cg.out',
                       'redis-server', '--port', str(port), '--save', '', '--appendonly', 'yes',
                       '--appendfsync', 'everysec', '--dir', d, '--auto-aof-rewrite-percentage', '0'],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = redis.Redis(port=port)
for _ in range(300):
    try:
        r.ping()
        break
    except redis.ConnectionError:
        time.sleep(0.1)
for kv in a.config:
    r.config_set(*kv.split('=', 1))
sys.path.insert(0, here)
from script_profile import Profile, K  # noqa: E402


def flush():
    """An empty Redis, with the queue's meta fields of --meta."""
    r.flushall()
    for kv in a.meta:
        r.hset(K('meta'), *kv.split('=', 1))


def counted(f, name=''):
    subprocess.run(['callgrind_control', '--zero', str(vg.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    f()
    for old in glob.glob(f'{d}/cg.out*'):
        os.remove(old)
    subprocess.run(['callgrind_control', '--dump', str(vg.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = sorted(glob.glob(f'{d}/cg.out*'))[-1]
    m = re.search(r'^(?:summary|totals): (\d+)', open(out).read(), re.M)
    if a.annotate:
        ann = subprocess.run(['callgrind_annotate', out], capture_output=True, text=True).stdout
        rows = [l for l in ann.splitlines() if re.match(r'^\s*[\d,]+ \(', l)][1:a.annotate + 1]
        shutil.copy(out, f'/tmp/cg-{counted.version}-{name}.out')  # for callgrind_annotate
        print('\n'.join('    ' + l.strip() for l in rows))
    return int(m.group(1))


try:
    for i, lua in enumerate(a.lua):
        counted.version = i + 1
        p = Profile(r, lua, a.jobs, a.batch, a.keep, dedup=a.dedup)
        p.quiet = True
        p.groups = a.groups
        p.flow = a.flow
        for name in ('add.lua', 'flow.lua', 'claim.lua', 'finish.lua'):
            if os.path.exists(os.path.join(lua, name)):
                p.load(name)  # compiled outside the counted phases
        flush()
        add = counted(lambda: p.add({}), 'add')
        proc = counted(lambda: p.process({}, {}), 'process')
        # Claim and finish apart: every job claimed first (a lease table of all jobs),
        # then every one finished.
        flush()
        p.add({})
        leases = []
        claim = counted(lambda: leases.extend(p.claim_all()), 'claim')
        fin = counted(lambda: p.finish_all(leases), 'finish')
        print(f'{lua}: add {add / a.jobs:,.0f} instructions/job; claim + finish {proc / a.jobs:,.0f} '
              f'(apart: claim {claim / a.jobs:,.0f}, finish {fin / a.jobs:,.0f}) '
              f'(batch {a.batch}, keep {a.keep}, dedup {a.dedup or "off"}, {a.jobs} jobs, groups {a.groups}, flow {a.flow}, meta {a.meta or "none"})')
finally:
    vg.terminate()
    vg.wait()
    shutil.rmtree(d, ignore_errors=True)
