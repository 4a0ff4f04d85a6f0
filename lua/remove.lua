#!lua flags=allow-oom
-- remove.lua: delete a job that is not running.
-- Flags: allow-oom. It only deletes, so it runs when Redis is over maxmemory: that is
-- when an operator needs it most.
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] completed  [5] failed  [6] cancelled
--       [7] meta  [8] events
-- ARGV: [1] key prefix  [2] id
-- Event (meta 'events' on): 'removed' (field state: the state it was in); written
-- over maxmemory too (allow-oom lets it), bounded by the stream's cap.
-- Returns: { code, state }: 1 removed; -1 no such job; -2 running (cancel it first).
-- A dedup key naming the job is deleted with it, a ttl one too (release_dedup).
-- Flows: a child removed before it finished is no longer waited for (child_removed: the
-- last one releases its parent); a removed parent's children run on, unawaited.
local prefix, id = ARGV[1], ARGV[2]
expand(prefix, id)
local f = redis.call('HMGET', prefix .. 'job:' .. id, 'state', 'keep')
local state = f[1]
if not state then return { -1, '' } end
if state == 'waiting' and is_leased(prefix, id) then state = 'active' end
if state == 'active' then return { -2, state } end
local group = group_of(f[2])
if group then group_unlist(prefix, group, id) end
redis.call('LREM', KEYS[1], 0, id)
for k = 2, 6 do redis.call('ZREM', KEYS[k], id) end
if state == 'waiting-children' then redis.call('ZREM', prefix .. 'waiting-children', id) end
delete_job(prefix, id)
local _, _, _, _, dd = keep_of(f[2])
if dd ~= '' then
  release_dedup(prefix, id, dd, true)
  local parent = split_tail(dd)
  if parent and state ~= 'completed' and state ~= 'failed' and state ~= 'cancelled' then
    child_removed(prefix, id, parent, now_ms())
  end
end
events_init(KEYS[8], redis.call('HGET', KEYS[7], 'events'))
emit('removed', id, 'state', state)
return { 1, state }
