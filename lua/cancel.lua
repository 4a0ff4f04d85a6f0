#!lua
-- cancel.lua: cancel a job from any process.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] active  [5] cancelled  [6] meta
--       [7] events
-- ARGV: [1] key prefix  [2] id  [3] cancel channel  [4] reason
--       [5] how to announce: 'PUBLISH', or 'SPUBLISH' on a cluster (sharded pub/sub: the
--       message stays on the shard that owns the queue, where its workers listen)
-- Returns: { code, state }: 1 cancelled now (it was waiting, delayed or waiting for its
-- children); 2 cancel recorded for a running job and announced on the channel (its
-- worker stops it, or the heartbeat or sweeper finds the flag); -1 no such job; -2
-- already finished (state says how).
-- A flow's parent (state 'waiting-children') takes its unfinished children with it,
-- theirs too: each cancelled the same way (a running one flagged and announced on its
-- own queue's channel), with the reason "parent <queue>/<id> cancelled: <reason>". The
-- children may be on other queues of the parent's Cluster slot: their keys are built
-- from their queue's prefix (prefix_of), the same names KEYS gives for this queue.
-- Event (meta 'events' on): 'cancelled' (error) when cancelled now, for jobs of this
-- queue; a running job's comes when its attempt ends (finish.lua, sweep.lua).
local now = nil
local publish = ARGV[5] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
events_init(KEYS[7], redis.call('HGET', KEYS[6], 'events'))

local function cancel(prefix, id, reason)
  expand(prefix, id)
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'state', 'keep')
  local state = f[1]
  if not state then return { -1, '' } end
  if state == 'completed' or state == 'failed' or state == 'cancelled' then return { -2, state } end
  if state == 'waiting' and is_leased(prefix, id) then state = 'active' end
  if state == 'active' then
    redis.call('HSET', jk, 'cancel', '1', 'cancel_reason', reason)
    redis.call(publish, prefix .. 'cancel', id)
    return { 2, state }
  end
  now = now or now_ms()
  local group = group_of(f[2])
  if group then
    group_unlist(prefix, group, id)
  else
    redis.call('LREM', prefix .. 'wait', 0, id)
    redis.call('ZREM', prefix .. 'prioritized', id)
  end
  redis.call('ZREM', prefix .. 'delayed', id)
  local _, _, kf, kfa, dd = keep_of(f[2])
  if state == 'waiting-children' then redis.call('ZREM', prefix .. 'waiting-children', id) end
  finish_job(prefix, prefix .. 'cancelled', jk, id, 'cancelled', 'error', reason, now, kf, kfa, dd)
  if prefix == ARGV[1] then emit('cancelled', id, 'error', reason) end
  if state == 'waiting-children' then
    local kids = redis.call('HGETALL', jk)
    local why = 'parent ' .. queue_of(prefix) .. '/' .. id .. ' cancelled: ' .. reason
    for i = 1, #kids, 2 do
      if kids[i + 1] == '' and string.byte(kids[i]) == 9 then
        local q, cid = string.match(kids[i], '^\t([^\t]*)\t(.*)$')
        if q then cancel(prefix_of(q), cid, why) end
      end
    end
  end
  return { 1, state }
end

local out = cancel(ARGV[1], ARGV[2], ARGV[4])
if now then retain_finished(ARGV[1], now) end
return out
