#!lua
-- schedule_fire.lua: add one scheduler tick's job, exactly once however many workers race.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] schedulers  [2] sched  [3] wait  [4] prioritized  [5] delayed  [6] meta
--       [7] wake  [8] events
-- ARGV: [1] key prefix  [2] scheduler id  [3] its stored value as read  [4] tick ms
--       [5] its stored value after this tick  [6] its next tick ms (-1: ended)
--       [7] job id  [8] spec (name, run options and payload: src/job/spec.rs)
--       [9] priority  [10] keep ("kc:kca:kf:kfa", see keep_of in common.lua; with "|g<group>" for a
--       template with a group: its jobs go to their group's line, as add.lua's)
-- A compare-and-set: unless the stored value is still ARGV[3] and the next tick still
-- ARGV[4], nothing is written (another worker fired this tick, or the scheduler was
-- upserted or removed meanwhile). The job is written with the fields add.lua writes
-- (keep the two in step; tests/suite/schedulers/surfaces.rs compares them): delayed until the
-- tick when that is still ahead (so the delayed machinery starts it on time), else
-- ready now. A job with that id already there changes nothing.
-- Event (meta 'events' on): 'added' (fields name, delayed = the tick when ahead, and
-- scheduler = its id), as add.lua's.
-- Returns: 1 job added, 2 the job existed (the scheduler still moved on), 0 stale.
local id = ARGV[2]
if redis.call('HGET', KEYS[1], id) ~= ARGV[3] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], id)
local tick = tonumber(ARGV[4])
if not score or tonumber(score) ~= tick then return 0 end

local now = now_ms()
local jid = ARGV[7]
local jk = ARGV[1] .. 'job:' .. jid
local added = 2
if not job_exists(ARGV[1], jid) then
  added = 1
  redis.call('HSETNX', KEYS[6], 'created', now)
  local pri = tonumber(ARGV[9])
  local delayed = tick > now
  redis.call('HSET', jk, 'spec', ARGV[8], 'state', delayed and 'delayed' or 'waiting',
    'ts', now, 'keep', ARGV[10])
  if pri > 0 then redis.call('HSET', jk, 'pri', pri) end
  local group = group_of(ARGV[10])
  if group then redis.call('HSETNX', KEYS[6], 'groups', '0:0:0') end
  if delayed then
    redis.call('HSET', jk, 'ready', tick)
    redis.call('ZADD', KEYS[5], tick, jid)
  elseif group then
    push_group(ARGV[1], KEYS[6], group, jid, false)
  elseif pri > 0 then
    local seq = redis.call('HINCRBY', KEYS[6], 'pseq', 1)
    redis.call('ZADD', KEYS[4], pri * PRIORITY_SCALE + (seq % PRIORITY_SCALE), jid)
  else
    redis.call('LPUSH', KEYS[3], jid)
  end
  wake(KEYS[7])
  events_init(KEYS[8], redis.call('HGET', KEYS[6], 'events'))
  if delayed then
    emit('added', jid, 'name', spec_name(ARGV[8]), 'delayed', tick, 'scheduler', id)
  else
    emit('added', jid, 'name', spec_name(ARGV[8]), 'scheduler', id)
  end
end

redis.call('HSET', KEYS[1], id, ARGV[5])
local nxt = tonumber(ARGV[6])
if nxt >= 0 then
  redis.call('ZADD', KEYS[2], nxt, id)
else
  redis.call('ZREM', KEYS[2], id)
end
return added
