-- claim.lua: promote due delayed jobs, then lease up to N ready jobs to a worker.
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] active  [5] meta  [6] wake
-- ARGV: [1] key prefix  [2] max jobs  [3] worker id  [4] lease ms
-- Returns: { next_delayed_due_ms (-1 if none), now_ms,
--            then per claimed job 8 values: id, token, attempt, name, data, opts, ready_ms, stalled }
-- The token is the job's fencing token: every later write about this attempt must
-- present it. Ids left in wait without a job hash (a race with remove) are skipped.
local prefix = ARGV[1]
local max = tonumber(ARGV[2])
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  for _, id in ipairs(due) do
    local jk = prefix .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'pri', 'name')
    if f[2] then -- an id without its hash (removed meanwhile) is just dropped
      push_ready(KEYS[1], KEYS[2], KEYS[5], id, tonumber(f[1] or '0'), false)
      redis.call('HSET', jk, 'state', 'waiting')
    end
  end
  redis.call('ZREM', KEYS[3], unpack(due))
end

local out = { -1, now }
if redis.call('HGET', KEYS[5], 'paused') ~= '1' and max > 0 then
  local ids = redis.call('RPOP', KEYS[1], max)
  if not ids then ids = {} end
  if #ids < max then
    local z = redis.call('ZPOPMIN', KEYS[2], max - #ids)
    for i = 1, #z, 2 do ids[#ids + 1] = z[i] end
  end
  local deadline = now + tonumber(ARGV[4])
  local leases = {}
  for _, id in ipairs(ids) do
    local jk = prefix .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'name', 'data', 'opts', 'ready', 'ts', 'stalled', 'token', 'attempt')
    if f[1] then
      local token = tonumber(f[7] or '0') + 1
      local attempt = tonumber(f[8] or '0') + 1
      redis.call('HSET', jk, 'state', 'active', 'worker', ARGV[3], 'started', now,
        'token', token, 'attempt', attempt)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, token, attempt, f[1]
      out[n + 5], out[n + 6], out[n + 7], out[n + 8] = f[2], f[3], tonumber(f[4] or f[5]), tonumber(f[6] or '0')
    end
  end
  -- One ZADD for the whole batch: the lease table.
  if #leases > 0 then redis.call('ZADD', KEYS[4], unpack(leases)) end
  if #ids == max and (redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0) then
    wake(KEYS[6])
  end
end
local next_due = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #next_due > 0 then out[1] = tonumber(next_due[2]) end
return out
