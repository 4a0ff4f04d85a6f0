#!lua
-- add.lua: enqueue one or many jobs atomically.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] meta  [5] wake
-- ARGV: [1] key prefix  [2] number of jobs n, then n groups of 8:
--       id, name, data (MessagePack), opts (MessagePack), delay_ms, priority,
--       keep ("kc:kca:kf:kfa", see keep_of in common.lua; "kc:kca:kf:kfa|group" for a
--       job of a group: it goes to its group's list, not the wait list, and its
--       priority is not used; see group_of),
--       fresh ('1': the id was just made by the producer (a random UUID) and is sent for
--       the first time, so it cannot exist and is not looked up; '0': given by the
--       caller, or sent again)
-- Only the fields every job needs are written; attempt, stalled and token start absent
-- (read as 0), pri only when set, ready only when delayed (else ts): fewer hash fields
-- is less Redis CPU per add. Ready jobs without priority go into the wait list with one
-- LPUSH for the batch, in the order given.
-- Returns: one integer per job: 1 added, 0 a job with that id exists (nothing changed).
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local seq = nil
local ready = {}
local grouped = false
redis.call('HSETNX', KEYS[4], 'created', now)
for i = 0, n - 1 do
  local b = 3 + i * 8
  local id = ARGV[b]
  local jk = prefix .. 'job:' .. id
  if ARGV[b + 7] ~= '1' and redis.call('EXISTS', jk) == 1 then
    out[#out + 1] = 0
  else
    local delay = tonumber(ARGV[b + 4])
    local pri = tonumber(ARGV[b + 5])
    -- One HSET per job, with pri and ready only when set.
    local f = { jk, 'name', ARGV[b + 1], 'data', ARGV[b + 2], 'opts', ARGV[b + 3],
      'state', delay > 0 and 'delayed' or 'waiting', 'ts', now, 'keep', ARGV[b + 6] }
    if pri > 0 then f[#f + 1], f[#f + 2] = 'pri', pri end
    if delay > 0 then f[#f + 1], f[#f + 2] = 'ready', now + delay end
    redis.call('HSET', unpack(f))
    local group = group_of(ARGV[b + 6])
    if group and not grouped then
      grouped = true
      -- Tells claim.lua to look at groups from now on.
      redis.call('HSETNX', KEYS[4], 'groups', '0:0:0')
    end
    if delay > 0 then
      redis.call('ZADD', KEYS[3], now + delay, id)
    elseif group then
      push_group(prefix, KEYS[4], group, id, false)
    elseif pri > 0 then
      if not seq then seq = redis.call('HINCRBY', KEYS[4], 'pseq', n) - n end
      seq = seq + 1
      redis.call('ZADD', KEYS[2], pri * PRIORITY_SCALE + (seq % PRIORITY_SCALE), id)
    else
      ready[#ready + 1] = id
    end
    out[#out + 1] = 1
  end
end
for i = 1, #ready, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ready, i, math.min(i + 999, #ready)))
end
wake(KEYS[5])
return out
