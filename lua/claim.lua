#!lua
-- claim.lua: promote due delayed jobs, then lease up to N ready jobs to a worker.
-- Flags: none, so Redis refuses the whole script (OOM) when over maxmemory: a worker
-- must not lease jobs whose leases and outcomes it could not write.
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] active  [5] meta  [6] wake
--       [7] failed  [8] limiter  [9] events
-- ARGV: [1] key prefix  [2] max jobs  [3] worker id  [4] lease ms
-- Reads meta 'paused' (lease nothing), 'concurrency' (lease at most that many in all)
-- and 'rate' = "N:MS" (start at most N jobs per window of MS ms: a fixed window, counted
-- in the limiter key, which expires with it; a claim held back by it returns the
-- window's end as its next due time, so idle workers sleep until then).
-- and 'events' (the events stream's cap: with it on, one 'active' event per job leased,
-- fields attempt and worker; 'failed' for a corrupt one), all in one HMGET per call.
-- Returns: { next_delayed_due_ms (-1 if none), now_ms,
--            then per claimed job 8 values: id, token, attempt, name, data, opts, ready_ms, stalled }
-- The token is the job's fencing token: every later write about this attempt must
-- present it. Ids left in wait or delayed without a job hash (a race with remove) are
-- skipped. A job whose record is corrupt (a field it needs missing or not a number) is
-- not leased: it ends failed with the reason as its error, the rest of the batch goes on.
-- A claim that leases nothing deletes a wake key that is not a LIST (junk), so the
-- worker's BLPOP on it blocks instead of failing.
local prefix = ARGV[1]
local max = tonumber(ARGV[2])
local now = now_ms()
local meta = redis.call('HMGET', KEYS[5], 'paused', 'concurrency', 'rate', 'events')
events_init(KEYS[9], meta[4])

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local fields = { 'pri', 'name' }
  for _, id in ipairs(due) do
    local jk = prefix .. 'job:' .. id
    local f, corrupt = read_job(jk, fields)
    if f and corrupt then
      fail_corrupt(prefix, KEYS[7], jk, id, corrupt, now)
    elseif f then
      push_ready(KEYS[1], KEYS[2], KEYS[5], id, f[1], false)
      redis.call('HSET', jk, 'state', 'waiting')
    end
  end
  redis.call('ZREM', KEYS[3], unpack(due))
end

local out = { -1, now }
-- A queue-wide cap on active jobs (meta 'concurrency', set by Queue::set_concurrency):
-- lease no more than the room left under it, counted in the lease table, so it holds
-- exactly across every worker (a claim is atomic) and frees itself as leases go.
local cap = tonumber(meta[2])
if cap and cap > 0 then
  local room = cap - redis.call('ZCARD', KEYS[4])
  if room < max then max = room end
end
local rate_n, rate_ms = string.match(meta[3] or '', '^(%d+):(%d+)$')
rate_n, rate_ms = tonumber(rate_n), tonumber(rate_ms)
local started = 0
if rate_n and rate_ms and rate_ms > 0 then
  started = tonumber(redis.call('GET', KEYS[8])) or 0
  local room = rate_n - started
  if room < max then max = room end
else
  rate_n = nil
end
local held_until, leased = nil, 0
if meta[1] ~= '1' and max > 0 then
  local ids = redis.call('RPOP', KEYS[1], max)
  if not ids then ids = {} end
  if #ids < max then
    local z = redis.call('ZPOPMIN', KEYS[2], max - #ids)
    for i = 1, #z, 2 do ids[#ids + 1] = z[i] end
  end
  local deadline = now + tonumber(ARGV[4])
  -- Redis turns a Lua number argument into text (sprintf) at every call: once here.
  local now_s = tostring(now)
  local leases = {}
  local fields = { 'name', 'data', 'opts', 'ready', 'ts', 'stalled', 'token', 'attempt' }
  for _, id in ipairs(ids) do
    local jk = prefix .. 'job:' .. id
    local f, corrupt = read_job(jk, fields)
    -- f: 1 name, 2 data, 3 opts, 4 ready, 5 ts, 6 stalled, 7 token, 8 attempt
    if f and not corrupt and not (f[4] or f[5]) then corrupt = corrupt_reason('ts', f[5]) end
    if f and corrupt then
      fail_corrupt(prefix, KEYS[7], jk, id, corrupt, now)
    elseif f then
      local token, attempt = f[7] + 1, f[8] + 1
      redis.call('HSET', jk, 'state', 'active', 'worker', ARGV[3], 'started', now_s,
        'token', token, 'attempt', attempt)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, token, attempt, f[1]
      out[n + 5], out[n + 6], out[n + 7], out[n + 8] = f[2], f[3], f[4] or f[5], f[6]
      emit('active', id, 'attempt', attempt, 'worker', ARGV[3])
    end
  end
  -- One ZADD for the whole batch: the lease table.
  if #leases > 0 then redis.call('ZADD', KEYS[4], unpack(leases)) end
  leased = #leases / 2
  if rate_n and #leases > 0 then
    if started == 0 then
      redis.call('SET', KEYS[8], #leases / 2, 'PX', rate_ms)
    else
      redis.call('INCRBY', KEYS[8], #leases / 2)
    end
  end
  if #ids == max and (redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0) then
    wake(KEYS[6])
  end
end
-- Held back by the rate limit with jobs waiting: idle workers sleep until the window ends.
if rate_n and started + leased >= rate_n and meta[1] ~= '1'
  and (redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0) then
  local ttl = redis.call('PTTL', KEYS[8])
  if ttl > 0 then held_until = now + ttl end
end
retain_finished(prefix, now)
-- Nothing leased: the worker blocks on the wake key next.
if #out == 2 then clear_junk_wake(KEYS[6]) end
local next_due = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #next_due > 0 then out[1] = tonumber(next_due[2]) end
if held_until and (out[1] < 0 or held_until < out[1]) then out[1] = held_until end
return out
