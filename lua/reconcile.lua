#!lua
-- reconcile.lua: after a claim whose reply was lost (the script may have run), hand
-- back every job leased to this worker that the worker does not know it holds.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] meta  [5] wake  [6] cancelled
--       [7] failed  [8] events  [9] leases
-- ARGV: [1] key prefix  [2] worker id, then the ids the worker holds
-- Returns: the ids handed back (or cancelled, when a cancel was recorded meanwhile, or
-- failed, when the job's record is corrupt: the reason is its error).
-- Event (meta 'events' on): 'cancelled' or 'failed' for a job that ends so; a job
-- handed back none.
-- Walks the whole lease table: run only after a failed claim, not routinely. A lease
-- is this worker's when its entry in leases (lease.lua) names it; a lease from before
-- that table (in the job's hash) is an older worker's, never this one's.
local prefix, me = ARGV[1], ARGV[2]
local now = now_ms()
local held = {}
for i = 3, #ARGV do held[ARGV[i]] = true end
local out = {}
local fields = { 'pri', 'cancel', 'keep' }
events_init(KEYS[8], redis.call('HGET', KEYS[4], 'events'))
local group_leases = {}
local mine = {}
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #all, 1000 do
  local part = { unpack(all, i, math.min(i + 999, #all)) }
  local entries = redis.call('HMGET', KEYS[9], unpack(part))
  for j, id in ipairs(part) do
    local _, attempt, _, worker = lease_parts(entries[j])
    if worker == me and not held[id] then mine[#mine + 1] = { id, attempt, entries[j] } end
  end
end
for _, m in ipairs(mine) do
  local id, attempt, entry = m[1], m[2], m[3]
  expand(prefix, id)
  local jk = prefix .. 'job:' .. id
  local f, corrupt = read_job(jk, fields)
  -- f: 1 pri, 2 cancel, 3 keep. Deleting the entry fences off the lease.
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[9], id)
  if f then
    local group = group_of(f[3])
    if group then group_leases[group] = (group_leases[group] or 0) + 1 end
    if corrupt then
      fail_corrupt(prefix, KEYS[7], jk, id, corrupt, now)
    elseif f[2] == '1' then
      local _, _, kf, kfa, dd = keep_of(f[3])
      finish_job(prefix, KEYS[6], jk, id, 'cancelled', 'error', 'cancelled by request', now, kf, kfa, dd,
        lease_field(entry))
      emit('cancelled', id, 'error', 'cancelled by request')
    else
      hand_back(prefix, KEYS[2], KEYS[3], KEYS[4], jk, id, attempt, f[1], now, group)
    end
    out[#out + 1] = id
  end
end
groups_release(prefix, KEYS[4], group_leases)
retain_finished(prefix, now)
if #out > 0 then wake(KEYS[5]) end
return out
