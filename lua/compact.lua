-- compact.lua: compact jobs, put into every baton script after lease.lua (see
-- src/scripts/mod.rs): not a script of its own.
--
-- A compact job is stored as one field of the queue's HASH 'jobs' (keys.rs: jobs),
-- id -> "<ts> <keep> <spec>" (its add time in ms, its retention 'keep', its spec:
-- src/job/compact.rs), instead of a hash of its own: add.lua writes a whole batch of
-- them with one HSET, claim.lua reads a batch with one HMGET, and finish.lua forgets a
-- completed one that nothing keeps with one HDEL a batch. A key a job costs Redis more
-- than the fields in it (its creation, lookup and deletion), so this is the hot path's
-- largest saving.
-- Only a plain job is compact: added ready (no delay), without priority, group, dedup
-- key or parent, so its 'keep' is "kc:kca:kf:kfa" alone (no spaces). It stays compact
-- while it waits and while it runs (its lease is in the leases hash, lease.lua). The
-- first write about it beyond that (a retry, a failure, a kept completion, progress,
-- steps, logs, a cancel, a removal...) expands it: its hash job:<id> is written with
-- the fields a plain job's hash holds (spec, state 'waiting', ts, keep) and its field
-- here is deleted, so from then on it is a job like any other. A script that may touch
-- a compact job by id calls expand before it reads the job's hash; one that asks
-- whether an id is taken asks job_exists.

-- The upgrade gate. A worker of a baton from before compact jobs pops a compact job's id
-- and, finding no hash, drops it as removed: the job would be lost. So compact jobs
-- are made only while meta 'compact' is '1': every worker registered on the queue
-- (workers:info) says it takes them ('"compact":1' in its description, written by
-- src/worker/heartbeat.rs). add.lua decides it the first time (no worker registered
-- counts as all of them), and every heartbeat of a worker that takes them (renew.lua)
-- sets it anew: '0' as soon as an older worker is registered, '1' once none is.
-- A rollback to an older baton is not covered: see docs/leases.md.
local function compact_workers_ready(prefix)
  for _, d in ipairs(redis.call('HVALS', prefix .. 'workers:info')) do
    if not string.find(d, '"compact":1', 1, true) then return false end
  end
  return true
end

-- Sets meta 'compact' (key `meta`) to what the registered workers allow, if it says
-- otherwise; returns true when compact jobs may be made.
local function compact_gate(prefix, meta, current)
  local want = compact_workers_ready(prefix) and '1' or '0'
  if current ~= want then redis.call('HSET', meta, 'compact', want) end
  return want == '1'
end

-- The value of the hash's field '' (no job id is empty): longer than
-- hash-max-listpack-value, so the hash is a hash table (see add.lua).
local COMPACT_PAD = string.rep('-', 65)

-- The parts of a compact job's value: ts (text), keep, spec; nil for a malformed one.
local function compact_parts(v)
  local a = string.find(v, ' ', 1, true)
  local b = a and string.find(v, ' ', a + 1, true)
  if not b then return nil end
  return string.sub(v, 1, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end

-- Expands compact job `id`, if it is one (`v`: its value when the caller read it
-- already): writes its hash and deletes its field. Returns true if it was compact. A
-- malformed value becomes the hash's spec without ts: the next claim fails the job
-- with the reason (check_job), nothing is lost silently.
local function expand(prefix, id, v)
  local h = prefix .. 'jobs'
  v = v or redis.call('HGET', h, id)
  if not v then return false end
  local ts, keep, spec = compact_parts(v)
  local jk = prefix .. 'job:' .. id
  if ts then
    redis.call('HSET', jk, 'spec', spec, 'state', 'waiting', 'ts', ts, 'keep', keep)
  else
    redis.call('HSET', jk, 'spec', v, 'state', 'waiting')
  end
  redis.call('HDEL', h, id)
  return true
end

-- The state of job `id` if it is compact: 'waiting', or 'active' while leased; nil
-- for a job that is not compact. Writes nothing: for the scripts that only refuse a
-- job that is not theirs to change.
local function compact_state(prefix, id)
  if redis.call('HEXISTS', prefix .. 'jobs', id) == 0 then return nil end
  return is_leased(prefix, id) and 'active' or 'waiting'
end

-- Whether job `id` of the queue at `prefix` exists, compact or not.
local function job_exists(prefix, id)
  return redis.call('EXISTS', prefix .. 'job:' .. id) == 1
    or redis.call('HEXISTS', prefix .. 'jobs', id) == 1
end
