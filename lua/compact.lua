-- compact.lua: compact jobs, put into every baton script after lease.lua (see
-- src/scripts/mod.rs): not a script of its own.
--
-- A compact job is stored as one field of the queue's HASH 'jobs' (keys.rs: jobs),
-- id -> "<ts> <keep> <spec>" (its add time in ms, its retention 'keep', its spec:
-- src/job/compact.rs), instead of a hash of its own: add.lua writes a whole batch of
-- them with one HSET, claim.lua reads a batch with one HMGET, and finish.lua forgets a
-- completed one that nothing keeps with one HDEL a batch, or puts a kept one's outcome
-- in its value with one HSET a batch (compact_done). A key a job costs Redis more than
-- the fields in it (its creation, lookup and deletion), so this is the hot path's
-- largest saving.
-- Only a plain job is compact: added ready (no delay), without priority, group, dedup
-- key or parent, so its 'keep' is "kc:kca:kf:kfa" alone (no spaces). It stays compact
-- while it waits, while it runs (its lease is in the leases hash, lease.lua) and once
-- completed and kept. Any other write about it (a retry, a failure, progress, steps,
-- logs, a cancel, a removal...) expands it: its hash job:<id> is written with the
-- fields its value stands for (spec, state, ts, keep; a completed one's finished,
-- lease, result) and its field here is deleted, so from then on it is a job like any
-- other. A script that may touch
-- a compact job by id calls expand before it reads the job's hash; one that asks
-- whether an id is taken asks job_exists.

-- The upgrade gate. A worker of a baton from before compact jobs pops a compact job's id
-- and, finding no hash, drops it as removed: the job would be lost. So compact jobs
-- are made only while meta 'compact' is '1': every worker registered on the queue
-- (workers:info) says it takes them ('"compact":1' in its description, written by
-- src/worker/heartbeat.rs). add.lua decides it the first time (no worker registered
-- counts as all of them), and every heartbeat of a worker that takes them (renew.lua)
-- sets it anew: '0' as soon as an older worker is registered, '1' once none is.
-- 'off' is an operator's: set by `baton uncompact` (uncompact.lua) before a rollback to
-- an older baton, it stays until `baton uncompact --reopen` deletes it, whatever the
-- heartbeats say, so current workers still running cannot open the gate again.
local function compact_workers_ready(prefix)
  for _, d in ipairs(redis.call('HVALS', prefix .. 'workers:info')) do
    if not string.find(d, '"compact":1', 1, true) then return false end
  end
  return true
end

-- Sets meta 'compact' (key `meta`) to what the registered workers allow, if it says
-- otherwise and is not 'off'; returns true when compact jobs may be made.
local function compact_gate(prefix, meta, current)
  if current == 'off' then return false end
  local want = compact_workers_ready(prefix) and '1' or '0'
  if current ~= want then redis.call('HSET', meta, 'compact', want) end
  return want == '1'
end

-- The value of the hash's field '' (no job id is empty): longer than
-- hash-max-listpack-value, so the hash is a hash table (see add.lua).
local COMPACT_PAD = string.rep('-', 65)

-- The parts of a waiting or running compact job's value: ts (text), keep, spec; nil
-- for a completed one or a malformed one. The claim's and the finish's path: one byte
-- tells a completed value (it starts with 'C', a waiting one with a digit).
local function compact_parts(v)
  if string.byte(v) == 67 then return nil end
  local a = string.find(v, ' ', 1, true)
  local b = a and string.find(v, ' ', a + 1, true)
  if not b then return nil end
  return string.sub(v, 1, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end

-- A completed compact job that its retention keeps: its value in 'jobs' stays the one
-- it had while it waited, and its outcome is a field of the queue's HASH 'done' (keys.rs:
-- done), id -> "C<finished>:<lease length>:<lease><result length>:<result>" (finish.lua
-- writes a batch's with one HSET: a completion writes a few dozen bytes, never the
-- payload again). Read together, outcome then value, the two are one text: the value
-- a kept compact job had in 'jobs' alone before the outcome moved out (a baton of
-- session 9 wrote that), so a reader parses either with compact_done(outcome .. value).
-- The finished set and its trimming are as for any kept job (drop_members deletes both
-- fields). Returns finished (text), lease, result and the waiting value, or nil for a
-- value that is not a completed one.
local function compact_done(v)
  local finished, ll, at = string.match(v, '^C(%d+):(%d+):()')
  if not finished then return nil end
  ll = tonumber(ll)
  local rl, at2 = string.match(v, '^(%d+):()', at + ll)
  if not rl then return nil end
  rl = tonumber(rl)
  return finished, string.sub(v, at, at + ll - 1), string.sub(v, at2, at2 + rl - 1),
    string.sub(v, at2 + rl)
end

-- A kept compact job's outcome: the field of 'done' (see compact_done).
local function compact_outcome(finished, lease, result)
  return 'C' .. finished .. ':' .. #lease .. ':' .. lease .. #result .. ':' .. result
end

-- The value of compact job `id` as one text, its outcome first when it is completed
-- (see compact_done): `v` is its value in 'jobs' when the caller read it already.
-- Nil for a job that is not compact.
local function compact_value(prefix, id, v)
  v = v or redis.call('HGET', prefix .. 'jobs', id)
  if not v then return nil end
  local o = redis.call('HGET', prefix .. 'done', id)
  return o and o .. v or v
end

-- The 'keep' of a waiting or running compact job's value, without copying its spec
-- (finish.lua's path: a spec may be kilobytes); nil for a completed or malformed one.
local function compact_keep(v)
  if string.byte(v) == 67 then return nil end
  local a = string.find(v, ' ', 1, true)
  local b = a and string.find(v, ' ', a + 1, true)
  return b and string.sub(v, a + 1, b - 1)
end

-- Expands compact job `id`, if it is one (`v`: its value when the caller read it
-- already): writes its hash and deletes its field. Returns true if it was compact. A
-- malformed value becomes the hash's spec without ts: the next claim fails the job
-- with the reason (check_job), nothing is lost silently.
local function expand(prefix, id, v)
  local h = prefix .. 'jobs'
  v = compact_value(prefix, id, v)
  if not v then return false end
  local jk = prefix .. 'job:' .. id
  local finished, lease, result, waiting = compact_done(v)
  local f = { jk, 'state', 'waiting' }
  if finished then
    v = waiting
    f = { jk, 'state', 'completed', 'finished', finished, 'lease', lease, 'result', result }
  end
  local ts, keep, spec = compact_parts(v)
  if ts then
    f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'spec', spec, 'ts', ts
    f[#f + 1], f[#f + 2] = 'keep', keep
  else
    f[#f + 1], f[#f + 2] = 'spec', v
  end
  redis.call('HSET', unpack(f))
  redis.call('HDEL', h, id)
  if finished then redis.call('HDEL', prefix .. 'done', id) end
  return true
end

-- The state of job `id` if it is compact: 'waiting', 'active' while leased, or
-- 'completed'; nil for a job that is not compact. Writes nothing: for the scripts that only refuse a
-- job that is not theirs to change.
local function compact_state(prefix, id)
  local v = redis.call('HGET', prefix .. 'jobs', id)
  if not v then return nil end
  if string.byte(v) == 67 or redis.call('HEXISTS', prefix .. 'done', id) == 1 then
    return 'completed'
  end
  return is_leased(prefix, id) and 'active' or 'waiting'
end

-- The spec in any compact job's value, or nil.
local function compact_spec(v)
  local _, _, _, waiting = compact_done(v)
  local _, _, spec = compact_parts(waiting or v)
  return spec
end

-- Whether job `id` of the queue at `prefix` exists, compact or not.
local function job_exists(prefix, id)
  return redis.call('EXISTS', prefix .. 'job:' .. id) == 1
    or redis.call('HEXISTS', prefix .. 'jobs', id) == 1
end
