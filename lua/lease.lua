-- lease.lua: the lease helpers, put into every baton script after common.lua (see
-- src/scripts/mod.rs): not a script of its own.
--
-- Leases (keys.rs: leases). claim.lua writes no job's hash: each lease is an entry of
-- the queue's HASH 'leases', id -> "token:attempt:started:worker", all of a claim's
-- in one HSET, beside the lease table (ZSET 'active', id -> deadline; an id is in both
-- or in neither). A leased job's own hash still says 'waiting', as when it was
-- claimed, so 'waiting' in a job hash means "ready or leased": a script that must tell
-- them apart asks is_leased. When a lease ends and the
-- job is kept, the entry goes into the job hash with the write the script makes anyway:
-- a finished job as one field 'lease' (lease_field: one field costs less than four,
-- and needs no parsing), a retried one as attempt, token, worker and started
-- (lease_fields: the next claim counts on its attempt). Tokens come from one sequence
-- per queue (field '' of 'leases', no job id is empty; its value is padded past 64
-- bytes so the hash stays a hash table), never below now_ms * 100, so a token is never
-- issued twice even if the table is deleted by hand.
-- A job leased before this table existed has no entry: its lease is in its own hash
-- (state 'active', token, worker, started, attempt), as old workers wrote and still
-- check it; sweep.lua recovers such a lease from there (and raises its token, which
-- fences the old worker off), reconcile.lua leaves it alone (it is not this worker's).

-- The parts of a lease entry: token (text), attempt (number), started (text), worker;
-- nil for a malformed entry.
local function lease_parts(v)
  if not v then return nil end
  local token, attempt, started, worker = string.match(v, '^(%d+):(%d+):(%d+):(.*)$')
  if not token then return nil end
  return token, tonumber(attempt), started, worker
end

-- The job hash fields that record an ended lease (for finish_job's `...` or an HSET).
local function lease_fields(v)
  local token, attempt, started, worker = lease_parts(v)
  if not token then return end
  return 'attempt', attempt, 'token', token, 'worker', worker, 'started', started
end

-- The job hash field that records a finished job's last lease (for finish_job's
-- `...`); nothing for no entry.
local function lease_field(v)
  if v then return 'lease', v end
end

-- Whether job `id` holds a lease of the lease table ('waiting' in its hash says
-- "ready or leased"). One HEXISTS: for the scripts off the hot path that must know.
local function is_leased(prefix, id)
  return redis.call('HEXISTS', prefix .. 'leases', id) == 1
end

-- The lease table's keeper: a member of 'active' that is no job (it starts with a NUL,
-- which no job id holds) and no lease (score +inf: never expires, never swept), longer
-- than zset-max-listpack-value (64 bytes), so the ZSET is a skiplist, not a listpack:
-- a claim's batch ZADD and a finish's ZREM then cost O(log n) a member instead of a
-- scan of the listpack each (about 12 000 instructions per job, callgrind). claim.lua
-- adds it with every batch (a lookup when it is there); everyone who counts or lists
-- 'active' leaves it out: Keys::ACTIVE_KEEPER in src/keys.rs is the same text.
local ACTIVE_KEEPER = string.char(0) .. 'baton: keeps this lease table a skiplist ' ..
  string.rep('.', 32)

-- The number of leases in the lease table `active` (its keeper left out).
local function lease_count(active)
  local n = redis.call('ZCARD', active)
  if n > 0 and redis.call('ZSCORE', active, ACTIVE_KEEPER) then n = n - 1 end
  return n
end
