#!lua
-- schedule_upsert.lua: create or replace a scheduler.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] schedulers  [2] sched  [3] delayed  [4] meta
-- ARGV: [1] key prefix  [2] scheduler id  [3] its stored value as read ('' = none)
--       [4] the job of its last tick ('' = none fired, or due already)  [5] that tick ms
--       [6] new stored value if that job is taken back  [7] next tick ms then (-1: none)
--       [8] new stored value if it stays  [9] next tick ms then (-1: none)
--       [10] the queue's cancel channel  [11] PUBLISH or SPUBLISH (a cluster)
--       [12] the message that wakes the workers' scheduler loops
-- A compare-and-set on the stored value: if it changed since it was read (a worker
-- fired a tick, another upsert), nothing is written and the caller reads again. The
-- last tick's job, when it still waits in the delayed set for a tick not yet come, is
-- taken back (deleted), so the new definition decides that tick: an upsert changes the
-- next run without a duplicate. Rust computed both outcomes; this picks one. The
-- workers' scheduler loops hear of the change at once on the cancel channel (a message
-- that no job id can be: it holds a NUL).
-- Returns: 0 changed meanwhile, 1 written (the last tick's job stays), 2 written and
-- the last tick's job taken back.
local id = ARGV[2]
local cur = redis.call('HGET', KEYS[1], id) or ''
if cur ~= ARGV[3] then return 0 end
local now = now_ms()
local value, nxt, out = ARGV[8], ARGV[9], 1
local pending = ARGV[4]
if pending ~= '' then
  local due = redis.call('ZSCORE', KEYS[3], pending)
  local tick = tonumber(ARGV[5])
  if due and tonumber(due) == tick and tick > now then
    redis.call('ZREM', KEYS[3], pending)
    delete_job(ARGV[1], pending)
    value, nxt, out = ARGV[6], ARGV[7], 2
  end
end
redis.call('HSETNX', KEYS[4], 'created', now)
redis.call('HSET', KEYS[1], id, value)
if tonumber(nxt) >= 0 then
  redis.call('ZADD', KEYS[2], nxt, id)
else
  redis.call('ZREM', KEYS[2], id)
end
redis.call(ARGV[11], ARGV[10], ARGV[12])
return out
