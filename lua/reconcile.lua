#!lua
-- reconcile.lua: after a claim whose reply was lost (the script may have run), hand
-- back every job leased to this worker that the worker does not know it holds.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] meta  [5] wake  [6] cancelled
--       [7] failed  [8] events
-- ARGV: [1] key prefix  [2] worker id, then the ids the worker holds
-- Returns: the ids handed back (or cancelled, when a cancel was recorded meanwhile, or
-- failed, when the job's record is corrupt: the reason is its error).
-- Event (meta 'events' on): 'cancelled' or 'failed' for a job that ends so; a job
-- handed back none.
-- Walks the whole lease table: run only after a failed claim, not routinely.
local prefix, me = ARGV[1], ARGV[2]
local now = now_ms()
local held = {}
for i = 3, #ARGV do held[ARGV[i]] = true end
local out = {}
local fields = { 'worker', 'pri', 'cancel', 'keep', 'token', 'attempt' }
events_init(KEYS[8], redis.call('HGET', KEYS[4], 'events'))
local group_leases = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not held[id] then
    local jk = prefix .. 'job:' .. id
    local f, corrupt = read_job(jk, fields)
    -- f: 1 worker, 2 pri, 3 cancel, 4 keep, 5 token, 6 attempt
    if f[1] == me then
      redis.call('ZREM', KEYS[1], id)
      local group = group_of(f[4])
      if group then group_leases[group] = (group_leases[group] or 0) + 1 end
      if corrupt then
        fail_corrupt(prefix, KEYS[7], jk, id, corrupt, now)
      else
        redis.call('HSET', jk, 'token', f[5] + 1)
        if f[3] == '1' then
          local _, _, kf, kfa, dd = keep_of(f[4])
          finish_job(prefix, KEYS[6], jk, id, 'cancelled', 'error', 'cancelled by request', now, kf, kfa, dd)
          emit('cancelled', id, 'error', 'cancelled by request')
        else
          hand_back(prefix, KEYS[2], KEYS[3], KEYS[4], jk, id, f[6], f[2], now, group)
        end
      end
      out[#out + 1] = id
    end
  end
end
groups_release(prefix, KEYS[4], group_leases)
retain_finished(prefix, now)
if #out > 0 then wake(KEYS[5]) end
return out
