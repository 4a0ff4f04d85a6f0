#!lua
-- cancel.lua: cancel a job from any process.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] active  [5] cancelled  [6] meta
--       [7] events
-- ARGV: [1] key prefix  [2] id  [3] cancel channel  [4] reason
--       [5] how to announce: 'PUBLISH', or 'SPUBLISH' on a cluster (sharded pub/sub: the
--       message stays on the shard that owns the queue, where its workers listen)
-- Returns: { code, state }: 1 cancelled now (it was waiting or delayed); 2 cancel
-- recorded for a running job and announced on the channel (its worker stops it, or the
-- heartbeat or sweeper finds the flag); -1 no such job; -2 already finished (state says how).
-- Event (meta 'events' on): 'cancelled' (error) when cancelled now; a running job's
-- comes when its attempt ends (finish.lua, sweep.lua).
local prefix, id = ARGV[1], ARGV[2]
local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 'state', 'keep')
local state = f[1]
if not state then return { -1, '' } end
if state == 'completed' or state == 'failed' or state == 'cancelled' then return { -2, state } end
if state == 'waiting' and is_leased(prefix, id) then state = 'active' end
if state == 'active' then
  redis.call('HSET', jk, 'cancel', '1', 'cancel_reason', ARGV[4])
  redis.call(ARGV[5] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[3], id)
  return { 2, state }
end
local now = now_ms()
local group = group_of(f[2])
if group then
  group_unlist(prefix, group, id)
else
  redis.call('LREM', KEYS[1], 0, id)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZREM', KEYS[3], id)
local _, _, kf, kfa, dd = keep_of(f[2])
finish_job(prefix, KEYS[5], jk, id, 'cancelled', 'error', ARGV[4], now, kf, kfa, dd)
retain_finished(prefix, now)
events_init(KEYS[7], redis.call('HGET', KEYS[6], 'events'))
emit('cancelled', id, 'error', ARGV[4])
return { 1, state }
