-- common.lua: helpers prepended to every baton script (see src/scripts.rs).
-- Nothing here touches a key that the calling script did not declare, except a job's
-- own keys, which share the queue's hash tag and so its cluster slot.

if redis.replicate_commands then pcall(redis.replicate_commands) end

-- Redis's own clock in milliseconds, so pods with skewed clocks agree on leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local PRIORITY_SCALE = 4294967296

-- A job's retention, stored as one field 'keep' = "kc:kca:kf:kfa": how many completed
-- and failed/cancelled jobs to keep (-1 = all) and their maximum age in ms (0 = none).
local function keep_of(keep)
  local kc, kca, kf, kfa = string.match(keep or '', '^(-?%d+):(%d+):(-?%d+):(%d+)$')
  if not kc then return -1, 0, -1, 0 end
  return tonumber(kc), tonumber(kca), tonumber(kf), tonumber(kfa)
end

-- Deletes a job and everything stored under it. A job's keys are `job:<id>`,
-- `steps:<id>` and `logs:<id>`: distinct prefixes, so no job id can name another
-- job's keys (with `job:<id>:steps`, job "a:steps" would be job "a"'s steps).
local function delete_job(prefix, id)
  redis.call('DEL', prefix .. 'job:' .. id, prefix .. 'steps:' .. id, prefix .. 'logs:' .. id)
end

-- Removes and deletes members of a finished set, at most 1000 a call.
local function drop_members(set, prefix, ids)
  if #ids == 0 then return 0 end
  for _, id in ipairs(ids) do delete_job(prefix, id) end
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

-- Leaves one wake-up token for a blocked idle worker (never more than one).
local function wake(wake_key)
  if redis.call('LLEN', wake_key) == 0 then redis.call('LPUSH', wake_key, '1') end
end

-- Makes a job ready. `front` puts it first in line (recovered or handed-back jobs).
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

-- Moves an active (or ready) job to a finished set and records why. A job whose
-- retention keeps none (`keep` = 0) is deleted instead; returns false then.
local function finish_job(prefix, set, jk, id, state, field, value, now, keep)
  if tonumber(keep) == 0 then
    delete_job(prefix, id)
    return false
  end
  redis.call('HSET', jk, 'state', state, field, value, 'finished', now)
  redis.call('ZADD', set, now, id)
  return true
end
