#!lua flags=no-writes
-- schedule_read.lua: read schedulers, with Redis's clock (read only).
-- KEYS: [1] schedulers (HASH id -> stored scheduler)  [2] sched (ZSET id -> next tick ms)
-- ARGV: [1] mode: 'due', 'one' or 'all'
--       due: [2] look-ahead ms  [3] most schedulers; those whose next tick is due
--            within the look-ahead, earliest first
--       one: [2] scheduler id
--       all: every scheduler, ended ones (no next tick) included
-- Returns: { now_ms, the first next tick beyond the look-ahead (due mode; else -1),
--            then per scheduler 3 values: id, next tick ms (-1: none), stored value
--            (nil: none) }; in due mode with no scheduler at all, { 0, -1 } (no clock
--            read: nothing needs it).
-- Stored values are MessagePack that only Rust reads (src/schedule/).
local out = { -1, -1 }
local function push(id, score)
  out[#out + 1] = id
  out[#out + 1] = score and tonumber(score) or -1
  out[#out + 1] = redis.call('HGET', KEYS[1], id)
end
local mode = ARGV[1]
if mode == 'due' then
  -- One ZRANGE by rank: the due ones and the first beyond. Nothing set at all (the
  -- common case of a worker's idle poll) costs this one command.
  local max = tonumber(ARGV[3])
  local first = redis.call('ZRANGE', KEYS[2], 0, max, 'WITHSCORES')
  if #first == 0 then return { 0, -1 } end
  local now = now_ms()
  out[1] = now
  local horizon = now + tonumber(ARGV[2])
  for i = 1, #first, 2 do
    local score = tonumber(first[i + 1])
    if score > horizon then
      out[2] = score
      break
    end
    if i <= 2 * max then push(first[i], score) end
  end
  return out
end
out[1] = now_ms()
if mode == 'one' then
  if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
    push(ARGV[2], redis.call('ZSCORE', KEYS[2], ARGV[2]))
  end
else
  local ids = redis.call('HKEYS', KEYS[1])
  table.sort(ids)
  for _, id in ipairs(ids) do push(id, redis.call('ZSCORE', KEYS[2], id)) end
end
return out
