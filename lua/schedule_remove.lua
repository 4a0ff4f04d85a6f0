#!lua flags=allow-oom
-- schedule_remove.lua: remove a scheduler, and its last tick's job if that still waits.
-- Flags: allow-oom (it only frees memory; an operator may need it on a full Redis).
-- KEYS: [1] schedulers  [2] sched  [3] delayed
-- ARGV: [1] key prefix  [2] scheduler id  [3] its stored value as read
--       [4] the job of its last tick ('' = none)  [5] that tick ms
-- A compare-and-set on the stored value, as schedule_upsert.lua: changed meanwhile
-- (a worker fired a tick), nothing is written and the caller reads again. The last
-- tick's job is deleted only while it waits in the delayed set for a tick not yet
-- come; one that is due, running or finished is left alone.
-- Returns: 0 changed meanwhile, 1 removed, 2 removed with its waiting job, -1 no such
-- scheduler.
local id = ARGV[2]
local cur = redis.call('HGET', KEYS[1], id)
if not cur then
  redis.call('ZREM', KEYS[2], id)
  return -1
end
if cur ~= ARGV[3] then return 0 end
local out = 1
local pending = ARGV[4]
if pending ~= '' then
  local due = redis.call('ZSCORE', KEYS[3], pending)
  local tick = tonumber(ARGV[5])
  if due and tonumber(due) == tick and tick > now_ms() then
    redis.call('ZREM', KEYS[3], pending)
    delete_job(ARGV[1], pending)
    out = 2
  end
end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
return out
