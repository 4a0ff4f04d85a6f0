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
--            (nil: none) }
-- Stored values are MessagePack that only Rust reads (src/schedule/).
local now = now_ms()
local out = { now, -1 }
local function push(id, score)
  out[#out + 1] = id
  out[#out + 1] = score and tonumber(score) or -1
  out[#out + 1] = redis.call('HGET', KEYS[1], id)
end
local mode = ARGV[1]
if mode == 'due' then
  local horizon = now + tonumber(ARGV[2])
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon, 'WITHSCORES', 'LIMIT', 0,
    tonumber(ARGV[3]))
  for i = 1, #due, 2 do push(due[i], due[i + 1]) end
  local beyond = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. horizon, '+inf', 'WITHSCORES',
    'LIMIT', 0, 1)
  if #beyond > 0 then out[2] = tonumber(beyond[2]) end
elseif mode == 'one' then
  if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
    push(ARGV[2], redis.call('ZSCORE', KEYS[2], ARGV[2]))
  end
else
  local ids = redis.call('HKEYS', KEYS[1])
  table.sort(ids)
  for _, id in ipairs(ids) do push(id, redis.call('ZSCORE', KEYS[2], id)) end
end
return out
