-- reconcile.lua: after a claim whose reply was lost (the script may have run), hand
-- back every job leased to this worker that the worker does not know it holds.
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] meta  [5] wake  [6] cancelled
-- ARGV: [1] key prefix  [2] worker id, then the ids the worker holds
-- Returns: the ids handed back (or cancelled, when a cancel was recorded meanwhile).
-- Walks the whole lease table: run only after a failed claim, not routinely.
local prefix, me = ARGV[1], ARGV[2]
local now = now_ms()
local held = {}
for i = 3, #ARGV do held[ARGV[i]] = true end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not held[id] then
    local jk = prefix .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'worker', 'pri', 'cancel', 'keep')
    if f[1] == me then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HINCRBY', jk, 'token', 1)
      if f[3] == '1' then
        local _, _, kf, kfa = keep_of(f[4])
        if finish_job(prefix, KEYS[6], jk, id, 'cancelled', 'error', 'cancelled by request', now, kf) then
          trim(KEYS[6], prefix, kf, kfa, now)
        end
      else
        redis.call('HINCRBY', jk, 'attempt', -1)
        redis.call('HSET', jk, 'state', 'waiting', 'ready', now)
        push_ready(KEYS[2], KEYS[3], KEYS[4], id, tonumber(f[2] or '0'), true)
      end
      out[#out + 1] = id
    end
  end
end
if #out > 0 then wake(KEYS[5]) end
return out
