#!lua flags=allow-oom
-- renew.lua: the heartbeat. Renews the leases of all of a worker's jobs in one call and
-- registers the worker as alive.
-- Flags: allow-oom. It runs when Redis is over maxmemory: it only rewrites entries
-- that exist (lease deadlines, the worker's own registration), and a worker that keeps
-- its leases then is not swept once memory frees; claim, finish and sweep are refused
-- whole until then.
-- KEYS: [1] active  [2] workers  [3] workers:info
-- ARGV: [1] key prefix  [2] worker id  [3] lease ms  [4] worker ttl ms
--       [5] worker description (JSON)  then pairs: id, token
-- Returns: { lost_ids, cancel_requested_ids }. A lost id's lease is gone or another
-- worker holds the job (fencing token differs): its handler must stop.
local prefix = ARGV[1]
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
local lost, cancels, renewed = {}, {}, {}
for i = 6, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  -- 'state' is 'active' exactly while the job is in the lease table (see finish.lua).
  local f = redis.call('HMGET', prefix .. 'job:' .. id, 'token', 'cancel', 'state')
  if f[1] == token and f[3] == 'active' then
    renewed[#renewed + 1], renewed[#renewed + 2] = deadline, id
    if f[2] == '1' then cancels[#cancels + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
-- One ZADD per 1000 renewed leases (XX: a lease that ended meanwhile is not made anew;
-- chunks keep unpack below Lua's stack limit).
for i = 1, #renewed, 2000 do
  redis.call('ZADD', KEYS[1], 'XX', unpack(renewed, i, math.min(i + 1999, #renewed)))
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
return { lost, cancels }
