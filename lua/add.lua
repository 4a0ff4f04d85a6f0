#!lua
-- add.lua: enqueue one or many jobs atomically.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] meta  [5] wake  [6] events
-- ARGV: [1] key prefix  [2] number of jobs n, then n groups of 6:
--       id, spec (name, run options and payload as one value: src/job/spec.rs),
--       delay_ms, priority,
--       keep ("kc:kca:kf:kfa", see keep_of in common.lua; "kc:kca:kf:kfa|g<group>" for
--       a job of a group: it goes to its group's list, not the wait list, and its
--       priority is not used; see group_of; the script appends the dedup tail),
--       fresh ('1': the id was just made by the producer (a random UUID) and is sent for
--       the first time, so it cannot exist and is not looked up; '0': given by the
--       caller, or sent again), followed for a job with a dedup key by
--       "<mode><ms>:<key>": mode 's' simple, 't' ttl (ms: how long), 'd' debounce (ms:
--       the window, which is also the job's delay_ms)
-- A plain job (ready, no priority, group or dedup key) is compact (compact.lua): one
-- field of the queue's 'jobs' hash, all of the batch's in one HSET; only while meta
-- 'compact' is '1' (the upgrade gate, compact.lua; read with 'created' and 'events').
-- Any other job gets its hash with only the fields every job needs (spec, state, ts,
-- keep); attempt, stalled and token start absent (read as 0), pri only when set,
-- ready only when delayed (else ts): fewer hash fields is less Redis CPU per add. Ready jobs without
-- priority go into the wait list with one LPUSH for the batch, in the order given.
-- Dedup (key `dedup:<key>`, a STRING naming the job that stands): the key is checked
-- lazily, so a key naming a job that is gone or finished is stale and the add proceeds
-- (a path that forgot to release it costs nothing worse than a look-up):
--   simple    stands while its job is waiting, delayed or active;
--   ttl       stands while the key lives (SET PX), whatever its job does;
--   debounce  a waiting or delayed job that stands gets the new payload (its name and
--             options stay: spec_with_data) and is due delay_ms from now (moved to
--             delayed); an active or finished one does not
--             stand, and the new job takes the key.
-- Reads meta 'created' and 'events' in one HMGET (it writes 'created' only the first
-- time); with events on, one 'added' event per job added (fields: name, delayed = its
-- ready time in ms when delayed).
-- Returns: one value per job: 1 added, 0 a job with that id exists (nothing changed),
-- or the id (a string) of the job that stands under the job's dedup key (nothing added).
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
-- Redis formats a Lua number argument as text (sprintf "%.17g") at every call: the
-- add time, written into every job, once here.
local now_s = string.format('%d', now)
local out = {}
local seq = nil
local ready = {}
-- Ids debounce moved to delayed (see standing); only when one of them may be waiting
-- for this batch's LPUSH does it matter (a key used in two modes in one batch).
local moved = nil
-- The batch's compact jobs: id, value, ... for one HSET of 'jobs' at the end, and
-- their ids (an id given twice in one call is added once).
local compact, compacted = {}, {}

-- The id of the job that stands under dedup key `dk` for an add in `mode`, or nil.
-- Debounce: moves that job to delayed, due at now + delay, with the payload of `spec`.
local function standing(dk, mode, spec, delay)
  local cur = redis.pcall('GET', dk)
  if type(cur) ~= 'string' then return nil end
  if mode == 't' then return cur end
  local sjk = prefix .. 'job:' .. cur
  local f = redis.call('HMGET', sjk, 'state', 'pri', 'spec')
  local st = f[1]
  if mode == 's' then
    if st == 'waiting' or st == 'delayed' or st == 'active' then return cur end
    return nil
  end
  if st == 'waiting' and is_leased(prefix, cur) then return nil end
  if st ~= 'waiting' and st ~= 'delayed' then return nil end
  if st == 'waiting' then
    moved = moved or {}
    moved[cur] = true
    if (tonumber(f[2]) or 0) > 0 then
      redis.call('ZREM', KEYS[2], cur)
    else
      redis.call('LREM', KEYS[1], 1, cur)
    end
  end
  if f[3] then
    redis.call('HSET', sjk, 'spec', spec_with_data(f[3], spec), 'state', 'delayed', 'ready',
      now + delay)
  else -- a job from before the spec field keeps its own three
    redis.call('HSET', sjk, 'data', spec_data(spec), 'state', 'delayed', 'ready', now + delay)
  end
  redis.call('ZADD', KEYS[3], now + delay, cur)
  return cur
end

local meta = redis.call('HMGET', KEYS[4], 'created', 'events', 'compact')
if not meta[1] then redis.call('HSETNX', KEYS[4], 'created', now) end
-- Compact jobs only once the gate is open (compact.lua); decided here the first time.
local compacting = meta[3] == '1'
if not meta[3] then compacting = compact_gate(prefix, KEYS[4], nil) end
events_init(KEYS[6], meta[2])
local grouped = false
-- The HSET of each job (see below): the field names and the add time never change.
local hset_args = { false, 'spec', false, 'state', false, 'ts', now_s, 'keep', false }
for i = 0, n - 1 do
  local b = 3 + i * 6
  local id = ARGV[b]
  local fresh = ARGV[b + 5]
  local mode, ms, dkey
  if #fresh > 1 then
    fresh, mode, ms, dkey = string.match(fresh, '^([01])([std])(%d+):(.+)$')
    if not fresh then return redis.error_reply('ERR add.lua: bad dedup argument ' .. ARGV[b + 5]) end
  end
  local stands = nil
  if fresh ~= '1' and (compacted[id] or job_exists(prefix, id)) then
    out[#out + 1] = 0
  else
    local delay = tonumber(ARGV[b + 2])
    local keep = ARGV[b + 4]
    if dkey then
      local dk = prefix .. 'dedup:' .. dkey
      stands = standing(dk, mode, ARGV[b + 1], delay)
      if not stands then
        if mode == 't' then
          redis.call('SET', dk, id, 'PX', ms)
        else
          redis.call('SET', dk, id)
        end
        keep = keep .. '|' .. mode .. dkey
      end
    end
    if stands then
      out[#out + 1] = stands
    else
      local pri = tonumber(ARGV[b + 3])
      local group = group_of(keep)
      if compacting and delay <= 0 and pri <= 0 and not group and not dkey then
        local c = #compact
        compact[c + 1], compact[c + 2] = id, now_s .. ' ' .. keep .. ' ' .. ARGV[b + 1]
        if fresh ~= '1' then compacted[id] = true end
      else
        -- One HSET per job, with pri and ready only when set.
        -- One table for every job of the call (a table a job costs Lua an allocation
        -- and its collection): the first 9 entries are rewritten, the rest counted.
        local f = hset_args
        f[1], f[3], f[5] = prefix .. 'job:' .. id, ARGV[b + 1], delay > 0 and 'delayed' or 'waiting'
        f[9] = keep
        local nf = 9
        if pri > 0 then f[nf + 1], f[nf + 2], nf = 'pri', pri, nf + 2 end
        if delay > 0 then f[nf + 1], f[nf + 2], nf = 'ready', now + delay, nf + 2 end
        redis.call('HSET', unpack(f, 1, nf))
      end
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
      if events_key then
        if delay > 0 then
          emit('added', id, 'name', spec_name(ARGV[b + 1]), 'delayed', now + delay)
        else
          emit('added', id, 'name', spec_name(ARGV[b + 1]))
        end
      end
    end
  end
end
if moved then
  local still = {}
  for _, id in ipairs(ready) do
    if not moved[id] then still[#still + 1] = id end
  end
  ready = still
end
-- With field '' (no job id is empty) padded past hash-max-listpack-value (64 bytes):
-- the hash stays a hash table, where the claim's HMGET and the finish's HDEL cost O(1)
-- a field instead of a scan of a listpack each; the field also keeps the key alive.
if #compact > 0 then
  compact[#compact + 1], compact[#compact + 2] = '', COMPACT_PAD
  for i = 1, #compact, 2000 do
    redis.call('HSET', prefix .. 'jobs', unpack(compact, i, math.min(i + 1999, #compact)))
  end
end
for i = 1, #ready, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ready, i, math.min(i + 999, #ready)))
end
wake(KEYS[5])
return out
