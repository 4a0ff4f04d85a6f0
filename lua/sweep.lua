#!lua
-- sweep.lua: recover jobs whose lease expired (their worker died or hung).
-- Flags: none, so Redis refuses the whole script (OOM) when over maxmemory: no job is
-- requeued or failed for stalling while its worker could not renew the lease.
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] failed  [5] cancelled  [6] meta
--       [7] wake  [8] workers  [9] workers:info  [10] events  [11] leases
-- ARGV: [1] key prefix  [2] max stalled  [3] max jobs this call
-- Returns: flat pairs id, outcome where outcome is 'requeued' (first in line again,
-- stalled count raised), 'failed' (stalled more than max stalled, or its record is
-- corrupt: the reason is its error; a stalled-out failure also enters the job's error
-- history, errors:<id>) or 'cancelled' (a cancel had been requested). An
-- expired lease of a job whose hash is gone is just dropped. Also forgets workers whose
-- heartbeat lapsed. Events (meta 'events' on, read only when a lease expired):
-- 'stalled' (requeued; field stalled = the count), 'failed', 'cancelled' (error).
-- A grouped job's lease is counted off its group (gactive).
-- The lease's entry (lease.lua) gives the attempt it consumed and is deleted, which
-- fences its worker off. A lease from before the lease table (no entry: the lease is
-- in the job's hash, written by an older claim.lua) is recovered from the hash as
-- before: its hash token is raised, which fences off the old worker's scripts.
local prefix = ARGV[1]
local max_stalled = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local fields = { 'stalled', 'cancel', 'pri', 'keep', 'state', 'attempt' }
local group_leases = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local entries = {}
if #ids > 0 then
  events_init(KEYS[10], redis.call('HGET', KEYS[6], 'events'))
  entries = redis.call('HMGET', KEYS[11], unpack(ids))
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('HDEL', KEYS[11], unpack(ids))
end
for k, id in ipairs(ids) do
  expand(prefix, id)
  local jk = prefix .. 'job:' .. id
  local f, corrupt = read_job(jk, fields)
  -- f: 1 stalled, 2 cancel, 3 pri, 4 keep, 5 state, 6 attempt
  local entry = entries[k]
  local _, lease_attempt = lease_parts(entry)
  if f and lease_attempt then f[6] = lease_attempt end
  local group = f and group_of(f[4])
  if group then group_leases[group] = (group_leases[group] or 0) + 1 end
  if f and corrupt then
    fail_corrupt(prefix, KEYS[4], jk, id, corrupt, now)
    out[#out + 1], out[#out + 2] = id, 'failed'
  elseif f then
    local _, _, kf, kfa, dd = keep_of(f[4])
    local stalled = f[1] + 1
    if lease_attempt then
      redis.call('HSET', jk, 'stalled', stalled)
    else
      -- A lease in the job's hash: a new token there fences off its old worker.
      local token = tonumber(redis.call('HGET', jk, 'token')) or 0
      redis.call('HSET', jk, 'stalled', stalled, 'token', string.format('%d', token + 1))
    end
    if f[2] == '1' then
      finish_job(prefix, KEYS[5], jk, id, 'cancelled', 'error',
        'cancelled (its worker stopped responding)', now, kf, kfa, dd, lease_field(entry))
      emit('cancelled', id, 'error', 'cancelled (its worker stopped responding)')
      out[#out + 1], out[#out + 2] = id, 'cancelled'
    elseif stalled > max_stalled then
      local why = 'job stalled ' .. stalled .. ' times (its lease expired; max_stalled is '
        .. max_stalled .. ')'
      if finish_job(prefix, KEYS[4], jk, id, 'failed', 'error', why, now, kf, kfa, dd,
        lease_field(entry)) then
        record_error(prefix, id, f[6], now, why)
      end
      emit('stalled', id, 'stalled', stalled)
      emit('failed', id, 'error', why, 'attempt', f[6])
      out[#out + 1], out[#out + 2] = id, 'failed'
    else
      hand_back(prefix, KEYS[2], KEYS[3], KEYS[6], jk, id, f[6], f[3], now, group)
      emit('stalled', id, 'stalled', stalled)
      out[#out + 1], out[#out + 2] = id, 'requeued'
    end
  end
end
groups_release(prefix, KEYS[6], group_leases)
retain_finished(prefix, now)
if #out > 0 then wake(KEYS[7]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 100)
if #dead > 0 then
  redis.call('ZREM', KEYS[8], unpack(dead))
  redis.call('HDEL', KEYS[9], unpack(dead))
end
return out
