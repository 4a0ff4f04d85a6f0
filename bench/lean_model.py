#!/usr/bin/env python3
"""What a leaner data model would cost Redis: an experiment, not baton's code.

Today a waiting job is a hash of its own (`job:<id>`) plus its id in the wait list, and
the claim reads the hash, the finish deletes it. Issue 10's memory target (half of
BullMQ's bytes per waiting job) is below the floor of any model with a key per waiting
job (see BENCHMARKS.md, session 7). This prototype measures the other model: a waiting
job is one record in the wait list (`<id>\\0<packed fields>`, packed by the producer),
the claim pops records and writes them into the lease entries (so a lost worker's job
can be put back), the finish only checks and drops the leases; a job hash is written
only when a job is kept. With `--index`, an id index (one HASH field per waiting job,
so lookups by id stay O(1)) is written at add and dropped at claim.

It prints, per job: instructions Redis runs (callgrind, AOF on, as
bench/script_instructions.py does) for add, claim and finish, and Redis memory per
waiting job (`used_memory` delta over --jobs jobs, a plain redis-server). Compare with
`bench/script_instructions.py` (baton's scripts) run the same way.

Usage: bench/lean_model.py [--jobs 2000] [--batch 50] [--index]   (needs valgrind, `pip install redis`)
"""
import argparse, glob, os, re, socket, subprocess, tempfile, time, uuid

import redis

ap = argparse.ArgumentParser()
ap.add_argument('--jobs', type=int, default=2000)
ap.add_argument('--batch', type=int, default=50)
ap.add_argument('--index', action='store_true', help='keep an id index (HASH id -> "") of waiting jobs')
a = ap.parse_args()

ADD = """
for i = 1, #ARGV do
  if ARGV[i] ~= '' and KEYS[2] ~= '' then
    local id = string.sub(ARGV[i], 1, string.find(ARGV[i], '\\0', 1, true) - 1)
    redis.call('HSET', KEYS[2], id, '')
  end
end
redis.call('LPUSH', KEYS[1], unpack(ARGV))
return #ARGV
"""
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local recs = redis.call('RPOP', KEYS[1], tonumber(ARGV[1])) or {}
local deadline = string.format('%d', now + 30000)
local lease = string.format('%d', now * 100) .. ':1:' .. now .. ':' .. ARGV[2] .. '\\0'
local entries, z, ids = {}, {}, {}
for i, r in ipairs(recs) do
  local id = string.sub(r, 1, string.find(r, '\\0', 1, true) - 1)
  entries[#entries + 1], entries[#entries + 2] = id, lease .. r
  z[#z + 1], z[#z + 2] = deadline, id
  ids[i] = id
end
if #recs > 0 then
  redis.call('HSET', KEYS[2], unpack(entries))
  redis.call('ZADD', KEYS[3], unpack(z))
  if KEYS[4] ~= '' then redis.call('HDEL', KEYS[4], unpack(ids)) end
end
return recs
"""
FINISH = """
local e = redis.call('HMGET', KEYS[1], unpack(ARGV))
local done = {}
for i, id in ipairs(ARGV) do
  if e[i] and string.find(e[i], ':', 1, true) then done[#done + 1] = id end
end
if #done > 0 then
  redis.call('HDEL', KEYS[1], unpack(done))
  redis.call('ZREM', KEYS[2], unpack(done))
end
return #done
"""


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def server(cmd_prefix, d):
    port = free_port()
    p = subprocess.Popen(cmd_prefix + ['redis-server', '--port', str(port), '--save', '', '--appendonly', 'yes',
                                       '--appendfsync', 'everysec', '--dir', d, '--auto-aof-rewrite-percentage', '0'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    for _ in range(300):
        try:
            r.ping()
            return p, r
        except redis.ConnectionError:
            time.sleep(0.1)
    raise SystemExit('redis-server did not start')


def record(i):
    # id, then what claim returns today: name, opts (14 bytes), ts, keep, data.
    return f'{uuid.uuid4()}\0bench\0' + 'x' * 14 + f'\0{int(time.time() * 1000)}\00:0:-1:0\0' + f'{{"i":{i}}}'


K = ['lean:wait', 'lean:leases', 'lean:active', 'lean:idx']


def add_all(r, n):
    idx = K[3] if a.index else ''
    for s in range(0, n, 1000):
        r.eval(ADD, 2, K[0], idx, *[record(i) for i in range(s, min(n, s + 1000))])


def process(r, n):
    idx = K[3] if a.index else ''
    left = n
    while left > 0:
        recs = r.eval(CLAIM, 4, K[0], K[1], K[2], idx, a.batch, 'w1')
        ids = [x.split(b'\0', 1)[0] for x in recs]
        r.eval(FINISH, 2, K[1], K[2], *ids)
        left -= len(ids)


d = tempfile.mkdtemp(prefix='baton-lean-')
vg, r = server(['valgrind', '--tool=callgrind', f'--callgrind-out-file={d}/cg.out'], d)


def counted(f):
    subprocess.run(['callgrind_control', '--zero', str(vg.pid)], check=True, capture_output=True)
    f()
    for old in glob.glob(f'{d}/cg.out*'):
        os.remove(old)
    subprocess.run(['callgrind_control', '--dump', str(vg.pid)], check=True, capture_output=True)
    out = sorted(glob.glob(f'{d}/cg.out*'))[-1]
    return int(re.search(r'^(?:summary|totals): (\d+)', open(out).read(), re.M).group(1))


try:
    r.flushall()
    add_all(r, 200)
    process(r, 200)  # warm: scripts loaded, keys made
    n = a.jobs
    add_i = counted(lambda: add_all(r, n)) / n
    proc_i = counted(lambda: process(r, n)) / n
finally:
    vg.terminate()
    vg.wait()

d2 = tempfile.mkdtemp(prefix='baton-lean-mem-')
p2, r2 = server([], d2)
try:
    r2.flushall()
    before = r2.info('memory')['used_memory']
    add_all(r2, 20000)
    time.sleep(0.2)
    mem = (r2.info('memory')['used_memory'] - before) / 20000
finally:
    p2.terminate()
    p2.wait()
print(f'lean model (index {"on" if a.index else "off"}): add {add_i:,.0f} instructions/job; '
      f'claim + finish {proc_i:,.0f} (batch {a.batch}, {n} jobs); memory {mem:.0f} bytes per waiting job (20 000 jobs)')
