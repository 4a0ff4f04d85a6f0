#!lua
-- retry.lua: run a failed or cancelled job again, from a fresh attempt count.
-- Recorded steps are kept, so it resumes after the last finished step.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] failed  [4] cancelled  [5] meta  [6] wake
--       [7] events
-- ARGV: [1] key prefix  [2] id
-- Event (meta 'events' on): 'retried' (field by = 'request', state = the state before).
-- Returns: { code, state }: 1 queued again; -1 no such job; -2 not failed or cancelled.
-- Errors (nothing written): "corrupt job record: field pri is '…'".
local prefix, id = ARGV[1], ARGV[2]
local compact = compact_state(prefix, id)
if compact then return { -2, compact } end
local jk = prefix .. 'job:' .. id
local f, corrupt = read_job(jk, { 'state', 'pri', 'keep' })
local state = f and f[1]
if not state then return { -1, '' } end
if state ~= 'failed' and state ~= 'cancelled' then return { -2, state } end
if corrupt then return redis.error_reply('ERR ' .. corrupt) end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', jk, 'cancel', 'cancel_reason', 'finished', 'error')
redis.call('HSET', jk, 'state', 'waiting', 'attempt', 0, 'stalled', 0, 'ready', now_ms())
push_job(prefix, KEYS[1], KEYS[2], KEYS[5], id, f[2], false, group_of(f[3]))
wake(KEYS[6])
events_init(KEYS[7], redis.call('HGET', KEYS[5], 'events'))
emit('retried', id, 'by', 'request', 'state', state)
return { 1, state }
