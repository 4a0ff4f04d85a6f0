-- retry.lua: run a failed or cancelled job again, from a fresh attempt count.
-- Recorded steps are kept, so it resumes after the last finished step.
-- KEYS: [1] wait  [2] prioritized  [3] failed  [4] cancelled  [5] meta  [6] wake
-- ARGV: [1] key prefix  [2] id
-- Returns: { code, state }: 1 queued again; -1 no such job; -2 not failed or cancelled.
local prefix, id = ARGV[1], ARGV[2]
local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 'state', 'pri')
if not f[1] then return { -1, '' } end
if f[1] ~= 'failed' and f[1] ~= 'cancelled' then return { -2, f[1] } end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', jk, 'cancel', 'cancel_reason', 'finished', 'error')
redis.call('HSET', jk, 'state', 'waiting', 'attempt', 0, 'stalled', 0, 'ready', now_ms())
push_ready(KEYS[1], KEYS[2], KEYS[5], id, tonumber(f[2] or '0'), false)
wake(KEYS[6])
return { 1, f[1] }
