-- sweep.lua: recover jobs whose lease expired (their worker died or hung).
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] failed  [5] cancelled  [6] meta
--       [7] wake  [8] workers  [9] workers:info
-- ARGV: [1] key prefix  [2] max stalled  [3] max jobs this call
-- Returns: flat pairs id, outcome where outcome is 'requeued' (first in line again,
-- stalled count raised), 'failed' (stalled more than max stalled) or 'cancelled'
-- (a cancel had been requested). Also forgets workers whose heartbeat lapsed.
local prefix = ARGV[1]
local max_stalled = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local jk = prefix .. 'job:' .. id
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', jk, 'stalled', 'cancel', 'pri', 'keep', 'name')
  if f[5] then
    local _, _, kf, kfa = keep_of(f[4])
    local stalled = tonumber(f[1] or '0') + 1
    -- A new token fences off the worker that lost the lease, should it come back.
    redis.call('HINCRBY', jk, 'token', 1)
    redis.call('HSET', jk, 'stalled', stalled)
    if f[2] == '1' then
      finish_job(prefix, KEYS[5], jk, id, 'cancelled', 'error', 'cancelled (its worker stopped responding)', now, kf)
      trim(KEYS[5], prefix, kf, kfa, now)
      out[#out + 1], out[#out + 2] = id, 'cancelled'
    elseif stalled > max_stalled then
      finish_job(prefix, KEYS[4], jk, id, 'failed', 'error', 'job stalled ' .. stalled ..
        ' times (its lease expired; max_stalled is ' .. max_stalled .. ')', now, kf)
      trim(KEYS[4], prefix, kf, kfa, now)
      out[#out + 1], out[#out + 2] = id, 'failed'
    else
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HSET', jk, 'state', 'waiting', 'ready', now)
      push_ready(KEYS[2], KEYS[3], KEYS[6], id, tonumber(f[3] or '0'), true)
      out[#out + 1], out[#out + 2] = id, 'requeued'
    end
  end
end
if #out > 0 then wake(KEYS[7]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 100)
if #dead > 0 then
  redis.call('ZREM', KEYS[8], unpack(dead))
  redis.call('HDEL', KEYS[9], unpack(dead))
end
return out
