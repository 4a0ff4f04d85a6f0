#!lua
-- record.lua: a running attempt writes about itself (step result, progress, log line).
-- Flags: none (refused whole when over maxmemory).
-- Fenced: only the holder of the current lease may write (its entry in leases,
-- lease.lua, carries the token).
-- KEYS: [1] leases  [2] job  [3] steps  [4] logs  [5] meta  [6] events
-- ARGV: [1] id  [2] token  [3] kind ('s' step, 'p' progress, 'l' log line)
--       [4] field (step name)  [5] value  [6] max log lines kept
-- Event (meta 'events' on, read only for progress): 'progress' (field progress: the
-- value as written).
-- A step or log line that creates its key marks the job hash (mark_side): finish.lua
-- then knows to delete that key with the job.
-- Returns: 1 written, 0 lock lost.
if lease_parts(redis.call('HGET', KEYS[1], ARGV[1])) ~= ARGV[2] then return 0 end
-- A compact job (compact.lua) gets its hash first: KEYS[1] is the queue's prefix
-- followed by 'leases'.
expand(string.sub(KEYS[1], 1, -7), ARGV[1])
local kind = ARGV[3]
if kind == 's' then
  if redis.call('HSET', KEYS[3], ARGV[4], ARGV[5]) == 1 then mark_side(KEYS[2]) end
elseif kind == 'p' then
  redis.call('HSET', KEYS[2], 'progress', ARGV[5])
  events_init(KEYS[6], redis.call('HGET', KEYS[5], 'events'))
  emit('progress', ARGV[1], 'progress', ARGV[5])
else
  if redis.call('RPUSH', KEYS[4], ARGV[5]) == 1 then mark_side(KEYS[2]) end
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[6]), -1)
end
return 1
