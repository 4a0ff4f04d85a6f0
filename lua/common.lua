-- common.lua: helpers put into every baton script, after the script's own `#!lua` line
-- (see src/scripts/mod.rs).
-- Nothing here touches a key that the calling script did not declare, except a job's
-- own keys, which share the queue's hash tag and so its cluster slot.
--
-- Read and check before writing: Redis does not roll back a script that fails half-way,
-- so a script converts and checks every job field it needs (read_job) before its first
-- write about that job, and a job whose record is corrupt fails alone (fail_corrupt).

-- Redis's own clock in milliseconds, so pods with skewed clocks agree on leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local PRIORITY_SCALE = 4294967296

-- A job's retention, stored as one field 'keep' = "kc:kca:kf:kfa": how many completed
-- and failed/cancelled jobs to keep (-1 = all) and their maximum age in ms (0 = none).
-- Anything else reads as "keep all", the safe side.
local function keep_of(keep)
  local kc, kca, kf, kfa = string.match(keep or '', '^(-?%d+):(%d+):(-?%d+):(%d+)$')
  if not kc then return -1, 0, -1, 0 end
  return tonumber(kc), tonumber(kca), tonumber(kf), tonumber(kfa)
end

-- The job hash fields a script converts to numbers, and what an absent one means. A
-- present one must read as a non-negative integer below 10^15 (exact as a Lua number);
-- 'ready' and 'ts' have no default.
local INT_FIELDS = { attempt = 0, stalled = 0, token = 0, pri = 0, ready = false, ts = false }
-- The fields a job cannot run without.
local REQUIRED = { name = true, data = true, opts = true }

local function corrupt_reason(name, v)
  if not v then return 'corrupt job record: field ' .. name .. ' is missing' end
  if #v > 64 then v = string.sub(v, 1, 64) .. '...' end
  return 'corrupt job record: field ' .. name .. " is '" .. v .. "'"
end

-- Checks fields `names` of job hash `jk` as HMGET returned them (`raw`, same order) and
-- converts them in place: integer fields (INT_FIELDS) to numbers, absent ones to their
-- default; other fields stay strings, absent ones false. Returns:
--   nil                  the hash does not exist at all (a race with remove: skip it)
--   raw, nil             all fine
--   raw, reason          the record is corrupt; reason says which field and how
-- Only reads, so a caller calls it before its first write about the job. In place and
-- by index, not into a table by name: this runs for every job of every claim.
local function check_job(jk, names, raw)
  local reason, missing = nil, false
  for i = 1, #names do
    local name, v = names[i], raw[i]
    local default = INT_FIELDS[name]
    if default ~= nil then
      if v then
        local n = tonumber(v)
        if n and n >= 0 and n < 1e15 and n % 1 == 0 then
          raw[i] = n
        else
          reason = reason or corrupt_reason(name, v)
        end
      else
        raw[i] = default
      end
    elseif not v and REQUIRED[name] then
      missing = true
      reason = reason or corrupt_reason(name, v)
    end
  end
  -- A required field missing may mean the whole hash is gone; tell the two apart only
  -- then, so the common path costs no extra command.
  if missing and redis.call('EXISTS', jk) == 0 then return nil end
  return raw, reason
end

-- HMGET of `names` and check_job.
local function read_job(jk, names)
  return check_job(jk, names, redis.call('HMGET', jk, unpack(names)))
end

-- Deletes a job and everything stored under it. A job's keys are `job:<id>`,
-- `steps:<id>`, `logs:<id>` and `errors:<id>`: distinct prefixes, so no job id can name
-- another job's keys (with `job:<id>:steps`, job "a:steps" would be job "a"'s steps).
local function delete_job(prefix, id)
  redis.call('DEL', prefix .. 'job:' .. id, prefix .. 'steps:' .. id, prefix .. 'logs:' .. id,
    prefix .. 'errors:' .. id)
end

-- How many attempts' errors a job keeps in `errors:<id>` (newest first).
local ERROR_HISTORY = 25

-- Records the error of one attempt in the job's bounded history (LIST `errors:<id>`,
-- newest first, entries "<attempt>:<ms>:<error>"). Only retry and fail outcomes call
-- it, never a completion: the hot path pays nothing. One LPUSH; the LTRIM only once the
-- list is over its bound.
local function record_error(prefix, id, attempt, now, value)
  local key = prefix .. 'errors:' .. id
  if redis.call('LPUSH', key, (attempt or 0) .. ':' .. now .. ':' .. value) > ERROR_HISTORY then
    redis.call('LTRIM', key, 0, ERROR_HISTORY - 1)
  end
end

-- Removes and deletes members of a finished set, at most 1000 a call: one DEL and one
-- ZREM for them all (each write command inside a script is propagated to the AOF on its
-- own, which costs Redis more than the write itself).
local function drop_members(set, prefix, ids)
  if #ids == 0 then return 0 end
  local keys = {}
  for i, id in ipairs(ids) do
    local n = i * 4
    keys[n - 3], keys[n - 2] = prefix .. 'job:' .. id, prefix .. 'steps:' .. id
    keys[n - 1], keys[n] = prefix .. 'logs:' .. id, prefix .. 'errors:' .. id
  end
  redis.call('DEL', unpack(keys))
  redis.call('ZREM', set, unpack(ids))
  return #ids
end

-- Applies a retention policy to a finished set: keep at most `count` (-1 = all) and
-- nothing older than `age` ms (0 = no age limit).
local function trim(set, prefix, count, age, now)
  if age > 0 then
    drop_members(set, prefix, redis.call('ZRANGEBYSCORE', set, '-inf', now - age, 'LIMIT', 0, 1000))
  end
  if count >= 0 then
    local excess = redis.call('ZCARD', set) - count
    if excess > 0 then
      if excess > 1000 then excess = 1000 end
      drop_members(set, prefix, redis.call('ZRANGE', set, 0, excess - 1))
    end
  end
end

-- Leaves one wake-up token for a blocked idle worker (never more than one). A wake key
-- of another type (junk written by hand) is replaced: it is baton's own key, holds
-- nothing but the token, and left alone it would fail every script that wakes (after
-- that script's writes) and every blocked worker's BLPOP. pcall, so the common path
-- costs no extra command.
local function wake(wake_key)
  local n = redis.pcall('LLEN', wake_key)
  if type(n) == 'table' then
    redis.call('DEL', wake_key)
    n = 0
  end
  if n == 0 then redis.call('LPUSH', wake_key, '1') end
end

-- Deletes a wake key of another type than LIST, so that a worker's BLPOP on it blocks
-- instead of failing with WRONGTYPE (see wake). One TYPE: for claims that found nothing.
local function clear_junk_wake(wake_key)
  local t = redis.call('TYPE', wake_key)
  t = t.ok or t
  if t ~= 'list' and t ~= 'none' then redis.call('DEL', wake_key) end
end

-- Makes a job ready. `front` puts it first in line (recovered or handed-back jobs).
-- `pri` must be a checked number (read_job).
local function push_ready(wait, prioritized, meta, id, pri, front)
  if pri > 0 then
    local seq = 0
    if not front then seq = redis.call('HINCRBY', meta, 'pseq', 1) % PRIORITY_SCALE end
    redis.call('ZADD', prioritized, pri * PRIORITY_SCALE + seq, id)
  elseif front then
    redis.call('RPUSH', wait, id)
  else
    redis.call('LPUSH', wait, id)
  end
end

-- Hands a job back: first in line again, the attempt not consumed (a shutdown, a lost
-- claim reply, an expired lease). `attempt` and `pri` are the job's, checked
-- (check_job). The caller has taken the job out of the lease table.
local function hand_back(wait, prioritized, meta, jk, id, attempt, pri, now)
  if attempt > 0 then attempt = attempt - 1 end
  redis.call('HSET', jk, 'state', 'waiting', 'ready', now, 'attempt', attempt)
  push_ready(wait, prioritized, meta, id, pri, true)
end

-- The retention policies of the finished sets this script added to, applied once at
-- the end of the script (retain_finished): a batch trims each set once.
local retained = {}

-- Jobs whose retention keeps none of their kind: their keys, deleted by
-- retain_finished with one DEL for the whole batch.
local doomed = {}

-- Finished set -> { score, id, ... } of the jobs finish_job kept, added by
-- retain_finished with one ZADD per set.
local entering = {}

-- `now` as text, made once: Redis formats a Lua number argument anew at every call.
local finished_text = nil

-- Finishes a job: moves it to a finished set and records why, then notes the set's
-- retention for retain_finished. `keep` is the job's own (count, age) for that set
-- (keep_of). A job whose retention keeps none of its kind is deleted instead (by
-- retain_finished, at the end of the script) and trims nothing: the other finished
-- jobs are not its business. Returns true if kept.
-- Every script that finishes a job calls this and retain_finished, nothing else.
local function finish_job(prefix, set, jk, id, state, field, value, now, count, age)
  if count == 0 then
    local n = #doomed
    doomed[n + 1], doomed[n + 2] = jk, prefix .. 'steps:' .. id
    doomed[n + 3], doomed[n + 4] = prefix .. 'logs:' .. id, prefix .. 'errors:' .. id
    return false
  end
  finished_text = finished_text or tostring(now)
  redis.call('HSET', jk, 'state', state, field, value, 'finished', finished_text)
  local members = entering[set]
  if not members then
    members = {}
    entering[set] = members
  end
  members[#members + 1], members[#members + 2] = now, id
  retained[set .. '|' .. count .. '|' .. age] = { set, count, age }
  return true
end

-- Adds the jobs finish_job kept to their finished sets, applies the retention it noted
-- and deletes the jobs it doomed; call once, at the end of the script.
local function retain_finished(prefix, now)
  for set, members in pairs(entering) do
    for i = 1, #members, 2000 do
      redis.call('ZADD', set, unpack(members, i, math.min(i + 1999, #members)))
    end
  end
  for _, p in pairs(retained) do trim(p[1], prefix, p[2], p[3], now) end
  for i = 1, #doomed, 4000 do
    redis.call('DEL', unpack(doomed, i, math.min(i + 3999, #doomed)))
  end
end

-- Fails a job whose record is corrupt (check_job's reason), under its failed retention.
-- Writes only fields that need no conversion.
local function fail_corrupt(prefix, failed, jk, id, reason, now)
  local _, _, kf, kfa = keep_of(redis.call('HGET', jk, 'keep'))
  finish_job(prefix, failed, jk, id, 'failed', 'error', reason, now, kf, kfa)
end
