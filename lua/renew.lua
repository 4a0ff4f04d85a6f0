#!lua flags=allow-oom
-- renew.lua: the heartbeat. Renews the leases of all of a worker's jobs in one call and
-- registers the worker as alive.
-- Flags: allow-oom. It runs when Redis is over maxmemory: it only rewrites entries
-- that exist (lease deadlines, the worker's own registration), and a worker that keeps
-- its leases then is not swept once memory frees; claim, finish and sweep are refused
-- whole until then.
-- KEYS: [1] active  [2] workers  [3] workers:info  [4] leases
-- ARGV: [1] key prefix  [2] worker id  [3] lease ms  [4] worker ttl ms
--       [5] worker description (JSON)  then pairs: id, token
-- Also sets meta 'compact', the upgrade gate for compact jobs (compact.lua), from the
-- registered workers' descriptions: one HGET and one HVALS a beat.
-- Returns: { lost_ids, cancel_requested_ids }. A lost id's lease is gone or another
-- worker holds the job (fencing token differs): its handler must stop.
local prefix = ARGV[1]
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
local lost, cancels, renewed = {}, {}, {}
-- The lease entries of all held jobs in one HMGET (chunks keep unpack below Lua's
-- stack limit): an entry is there exactly while the job is in the lease table.
local ids = {}
for i = 6, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local entries = {}
for i = 1, #ids, 1000 do
  local part = redis.call('HMGET', KEYS[4], unpack(ids, i, math.min(i + 999, #ids)))
  for j = 1, #part do entries[i + j - 1] = part[j] end
end
for k, id in ipairs(ids) do
  if lease_parts(entries[k]) == ARGV[5 + 2 * k] then
    renewed[#renewed + 1], renewed[#renewed + 2] = deadline, id
    if redis.call('HGET', prefix .. 'job:' .. id, 'cancel') == '1' then
      cancels[#cancels + 1] = id
    end
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
-- The upgrade gate for compact jobs (compact.lua): shut while an older worker is
-- registered, open once none is; left shut when an operator set it 'off'.
local meta = prefix .. 'meta'
compact_gate(prefix, meta, redis.call('HGET', meta, 'compact'))
return { lost, cancels }
