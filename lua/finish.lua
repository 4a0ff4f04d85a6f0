-- finish.lua: write the outcomes of many attempts in one call (the ack batch).
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] delayed  [5] completed  [6] failed
--       [7] cancelled  [8] meta  [9] wake
-- ARGV: [1] key prefix  [2] number of outcomes n, then n groups of 5:
--       id, token, kind, value, delay_ms
--       kind: 'c' completed (value = result), 'r' retry after delay_ms (value = error),
--             'f' failed (value = error), 'x' cancelled (value = reason),
--             'h' hand back: first in line again, the attempt not consumed (shutdown)
-- Returns: one integer per outcome: 1 written as asked; 2 the job ended cancelled
--          instead, because a cancel was requested; 0 lock lost (the lease is gone or
--          another worker holds the job): nothing was written.
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local policies = {}
local woke = false
local released = {}

local function retain(kept, set, count, age)
  if not kept then return end
  policies[set .. '|' .. count .. '|' .. age] = { set, tonumber(count), tonumber(age) }
end

for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, token, kind, value = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'token', 'cancel', 'pri', 'keep')
  if f[1] ~= token or not redis.call('ZSCORE', KEYS[1], id) then
    out[#out + 1] = 0
  else
    released[#released + 1] = id
    local kc, kca, kf, kfa = keep_of(f[4])
    local pri = tonumber(f[3] or '0')
    local result = 1
    if f[2] == '1' and kind ~= 'x' then
      kind, value, result = 'x', 'cancelled while running', 2
    end
    if kind == 'c' then
      retain(finish_job(prefix, KEYS[5], jk, id, 'completed', 'result', value, now, kc), KEYS[5], kc, kca)
    elseif kind == 'f' then
      retain(finish_job(prefix, KEYS[6], jk, id, 'failed', 'error', value, now, kf), KEYS[6], kf, kfa)
    elseif kind == 'x' then
      retain(finish_job(prefix, KEYS[7], jk, id, 'cancelled', 'error', value, now, kf), KEYS[7], kf, kfa)
    elseif kind == 'r' then
      local delay = tonumber(ARGV[b + 4])
      if delay > 0 then
        redis.call('HSET', jk, 'state', 'delayed', 'error', value, 'ready', now + delay)
        redis.call('ZADD', KEYS[4], now + delay, id)
      else
        redis.call('HSET', jk, 'state', 'waiting', 'error', value, 'ready', now)
        push_ready(KEYS[2], KEYS[3], KEYS[8], id, pri, false)
      end
      woke = true
    else -- 'h'
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HSET', jk, 'state', 'waiting', 'ready', now)
      push_ready(KEYS[2], KEYS[3], KEYS[8], id, pri, true)
      woke = true
    end
    out[#out + 1] = result
  end
end
-- One ZREM for the whole batch: these leases are released.
if #released > 0 then redis.call('ZREM', KEYS[1], unpack(released)) end
for _, p in pairs(policies) do trim(p[1], prefix, p[2], p[3], now) end
if woke then wake(KEYS[9]) end
return out
