#!lua
-- promote.lua: run a delayed job now: make it ready at once, ahead of what is left of
-- its delay or retry backoff (the dashboard's "run now", Queue::promote).
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] meta  [5] wake  [6] events
-- ARGV: [1] key prefix  [2] id
-- Event (meta 'events' on): 'promoted'.
-- Returns: { code, state }: 1 made ready; -1 no such job; -2 not delayed.
-- Errors (nothing written): "corrupt job record: field pri is '…'".
local prefix, id = ARGV[1], ARGV[2]
local compact = compact_state(prefix, id)
if compact then return { -2, compact } end
local jk = prefix .. 'job:' .. id
local f, corrupt = read_job(jk, { 'state', 'pri', 'keep' })
if not f or not f[1] then return { -1, '' } end
local state = f[1]
if state ~= 'delayed' or not redis.call('ZSCORE', KEYS[3], id) then return { -2, state } end
if corrupt then return redis.error_reply('ERR ' .. corrupt) end
redis.call('ZREM', KEYS[3], id)
redis.call('HSET', jk, 'state', 'waiting', 'ready', now_ms())
push_job(prefix, KEYS[1], KEYS[2], KEYS[4], id, f[2], false, group_of(f[3]))
wake(KEYS[5])
events_init(KEYS[6], redis.call('HGET', KEYS[4], 'events'))
emit('promoted', id)
return { 1, state }
