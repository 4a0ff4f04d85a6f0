#!lua
-- finish.lua: write the outcomes of many attempts in one call (the ack batch).
-- Flags: none, so Redis refuses the whole script (OOM) when over maxmemory; the worker
-- keeps the outcomes and tries again.
-- KEYS: [1] active  [2] wait  [3] prioritized  [4] delayed  [5] completed  [6] failed
--       [7] cancelled  [8] meta  [9] wake  [10] events  [11] leases
-- ARGV: [1] key prefix  [2] number of completions c, or "c:f", then c groups of 3:
--       id, token, result (kind 'c', the ack's hot path: two arguments a job fewer),
--       the first f of them forgettable (below);
--       then the number of other outcomes o, then o groups of 5:
--       id, token, kind, value, delay_ms
--       kind: 'c' completed (value = result), 'r' retry after delay_ms (value = error),
--             'f' failed (value = error), 'x' cancelled (value = reason),
--             'h' hand back: first in line again, the attempt not consumed (shutdown),
--             'l' rate limited: delayed for delay_ms, the attempt not consumed, and
--             its group (or, without a group, the whole queue) held as long: no job
--             of it starts before then (value = reason)
-- Forgettable completions: the worker's claim showed each of these jobs compact and
-- kept by none, with no tail (no group, flow or dedup key: src/scripts/claim.rs), so
-- its completion only deletes its value: after the lease check, one HDEL of the
-- batch's, unread (no HMGET of 'jobs', no parse of a value a job). A job expanded
-- since its claim (a cancel request, a progress record, a refused remove) has lost its
-- value: when the HDEL deletes fewer than asked, those with a hash go the full way
-- below (a cancel request still wins). One with neither value nor hash (deleted by
-- hand while it ran) answers 1 then, as its value would have been deleted anyway.
-- Returns: one integer per outcome, in the order of ARGV (completions first): 1
--          written as asked; 2 the job ended cancelled instead, because a cancel was
--          requested; 0 lock lost (the lease is gone or another worker holds the job; or
--          the same lease twice in one call): nothing was written.
-- Events (meta 'events' on): 'completed' (result), 'failed' (error), 'cancelled'
-- (error), 'retried' (error, delay_ms), each with the attempt; a hand back none.
-- Cost: one HMGET of meta and one HMGET of the leases per call; one HMGET of the
-- job's hash (cancel, keep, side) per job (and one of pri for a retry now, hand back or
-- rate-limited job) and, for a job kept or retried, the write
-- (which also records the ended lease: field 'lease', lease.lua); a retry or a
-- failure also one LPUSH to the job's error history, errors:<id>. The lease release
-- (ZREM and HDEL) and the deletion of jobs kept by none of their retention (DEL) are
-- one command each for the batch. An unkept completion writes nothing of its own.
-- A compact job (compact.lua) that completes costs no read of its own (its value came
-- with the batch's HMGET of 'jobs'): unkept, its field goes with the batch's HDEL;
-- kept, it stays compact, its value untouched and its outcome a field of 'done'
-- (compact_outcome), with the batch's HSET. Any other outcome expands it first.
-- A lease is checked in the leases HASH (lease.lua): the entry must be there and
-- carry the token. A job leased before that table existed (its lease in its own hash)
-- is refused here (0, lock lost): only the old worker that holds it, with its own
-- scripts, can finish it, and sweep.lua recovers it when that worker is gone.
-- A retry now or a hand back needs the job's priority (and a hand back its attempt):
-- when those fields are corrupt the job is put in delayed, due now, and is written as
-- asked (1); the next claim fails it with the reason.
-- A grouped job (group_of its 'keep') also counts its group's lease off; a hand back or
-- retry now puts it in its group's list.
local prefix = ARGV[1]
local nc, nf = string.match(ARGV[2], '^(%d+):?(%d*)$')
nc = tonumber(nc)
nf = math.min(tonumber(nf) or 0, nc)
local others = 3 + nc * 3 -- where the count of the other outcomes is
local n = nc + tonumber(ARGV[others])
-- Where outcome i (0-based) starts in ARGV: its id, then token, (kind,) value.
local function at(i)
  if i < nc then return 3 + i * 3 end
  return others + 1 + (i - nc) * 5
end
local now = now_ms()
local out = {}
local woke = false
local released = {}
local seen = {}
local group_leases = nil
-- A lease entry is there exactly while the job is in the lease table (claim writes
-- both; every script that ends a lease removes both), so it stands in for a ZSCORE.
local fields = { 'cancel', 'keep', 'side' }
-- Only a retry now, a hand back and a rate-limited job need the priority: read apart
-- (each field an HMGET reads that the job lacks costs a scan of its hash).
local PRI = { 'pri' }
local meta = redis.call('HMGET', KEYS[8], 'concurrency', 'events')
events_init(KEYS[10], meta[2])
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[at(i)] end
local entries = n > 0 and redis.call('HMGET', KEYS[11], unpack(ids)) or {}
-- The forgettable completions (see the header): fenced, then deleted unread.
local unread, redo = {}, nil
for i = 1, nf do
  local id, entry, token = ids[i], entries[i], ARGV[i * 3 + 1]
  -- The entry starts with the token and a colon: two plain looks, no string made.
  if entry and string.find(entry, token, 1, true) == 1 and string.byte(entry, #token + 1) == 58
    and not seen[id] then
    seen[id] = true
    unread[#unread + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #unread > 0 then
  local d = 0
  for i = 1, #unread, 1000 do
    d = d + redis.call('HDEL', prefix .. 'jobs', unpack(unread, i, math.min(i + 999, #unread)))
  end
  if d < #unread then
    redo = {}
    for i = 1, nf do
      if out[i] == 1 and redis.call('EXISTS', prefix .. 'job:' .. ids[i]) == 1 then redo[i] = true end
    end
  end
  for i = 1, nf do
    if out[i] == 1 and not (redo and redo[i]) then
      released[#released + 1] = ids[i]
      if events_key then
        local _, attempt = lease_parts(entries[i])
        emit('completed', ids[i], 'result', ARGV[i * 3 + 2], 'attempt', attempt)
      end
    end
  end
end
-- The other compact jobs among them (compact.lua), in one HMGET; those completed are
-- forgotten with one HDEL of the batch, or kept compact with one HSET of the batch.
local packed = n > nf and redis.call('HMGET', prefix .. 'jobs', unpack(ids, nf + 1)) or {}
local forgotten, done = {}, {}
-- What the HMGET of `fields` would give for a compact job: rewritten for each.
local craw = { false, false, false }

-- The rest, and the forgettable ones expanded since their claim (already fenced).
for i = redo and 0 or nf, n - 1 do
  if i >= nf or redo[i + 1] then
    local b = at(i)
    local id, token, kind, value = ARGV[b], ARGV[b + 1], 'c', ARGV[b + 2]
    if i >= nc then kind, value = ARGV[b + 2], ARGV[b + 3] end
    local entry = entries[i + 1]
    -- The entry starts with the token and a colon (as above).
    local ok = entry and (i < nf or string.find(entry, token, 1, true) == 1
      and string.byte(entry, #token + 1) == 58 and not seen[id])
    local raw, compact = nil, nil
    local v = ok and i >= nf and packed[i + 1 - nf]
    if v then
      -- A compact job completed: what finish_job_side would read, from its value; kept,
      -- it stays compact with its outcome. Any other outcome expands it first.
      local keep = kind == 'c' and compact_keep(v)
      if keep then
        raw, compact = craw, true
        raw[2] = keep
      else
        expand(prefix, id, v)
      end
    end
    -- A compact job has no hash: its key is not built.
    local jk = not compact and prefix .. 'job:' .. id
    raw = raw or (ok and redis.call('HMGET', jk, unpack(fields)))
    -- Every job has 'keep' (add.lua); without it, a hash gone (removed by hand) only
    -- releases its lease.
    if raw and not raw[2] and redis.call('EXISTS', jk) == 0 then
      seen[id] = true
      released[#released + 1] = id
      raw = nil
    end
    if not raw then
      out[i + 1] = 0
    else
      seen[id] = true
      released[#released + 1] = id
      local kc, kca, kf, kfa, dd, group = keep_of(raw[2])
      if group then
        group_leases = group_leases or {}
        group_leases[group] = (group_leases[group] or 0) + 1
      end
      local result = 1
      if raw[1] == '1' and kind ~= 'x' then
        kind, value, result = 'x', 'cancelled while running', 2
      end
      -- Only the groups of 5 have one (a completion's group of 3 is the hot path).
      local delay = i >= nc and tonumber(ARGV[b + 4])
      local f, corrupt
      if kind == 'h' or kind == 'l' or (kind == 'r' and delay <= 0) then
        f, corrupt = read_job(jk, PRI) -- 1 pri
      end
      -- The attempt is needed by every kind but a completion without events.
      local _, attempt = nil, nil
      if kind ~= 'c' or events_key then _, attempt = lease_parts(entry) end
      if corrupt then
        redis.call('HSET', jk, 'state', 'delayed', 'ready', now, lease_fields(entry))
        if kind == 'r' then redis.call('HSET', jk, 'error', value) end
        redis.call('ZADD', KEYS[4], now, id)
        woke = true
      elseif kind == 'c' and kc == 0 and dd == '' then
        -- Kept by none and in no flow or dedup: deleted with the batch's DEL, as
        -- finish_job_side would, without its call of 13 arguments (a compact one has no
        -- key: its field goes with the batch's HDEL).
        if compact then
          forgotten[#forgotten + 1] = id
        else
          doom(prefix, jk, id, raw[3])
        end
        if events_key then emit('completed', id, 'result', value, 'attempt', attempt) end
      elseif kind == 'c' and compact then
        -- Plain (compact.lua): no dedup key nor parent to tell.
        finished_text = finished_text or tostring(now)
        local d = #done
        done[d + 1], done[d + 2] = id, compact_outcome(finished_text, entry, value)
        enter_finished(prefix, KEYS[5], id, kc, kca)
        if events_key then emit('completed', id, 'result', value, 'attempt', attempt) end
      elseif kind == 'c' then
        finish_job_side(raw[3], prefix, KEYS[5], jk, id, 'completed', 'result', value, now,
          kc, kca, dd, lease_field(entry))
        if events_key then emit('completed', id, 'result', value, 'attempt', attempt) end
      elseif kind == 'f' then
        if finish_job_side(raw[3], prefix, KEYS[6], jk, id, 'failed', 'error', value, now,
          kf, kfa, dd, lease_field(entry)) then
          record_error(prefix, id, attempt, now, value)
        end
        emit('failed', id, 'error', value, 'attempt', attempt)
      elseif kind == 'x' then
        finish_job_side(raw[3], prefix, KEYS[7], jk, id, 'cancelled', 'error', value, now,
          kf, kfa, dd, lease_field(entry))
        emit('cancelled', id, 'error', value, 'attempt', attempt)
      elseif kind == 'r' then
        emit('retried', id, 'error', value, 'attempt', attempt, 'delay_ms', ARGV[b + 4])
        record_error(prefix, id, attempt, now, value)
        if delay > 0 then
          redis.call('HSET', jk, 'state', 'delayed', 'error', value, 'ready', now + delay,
            lease_fields(entry))
          redis.call('ZADD', KEYS[4], now + delay, id)
        else
          redis.call('HSET', jk, 'state', 'waiting', 'error', value, 'ready', now,
            lease_fields(entry))
          push_job(prefix, KEYS[2], KEYS[3], KEYS[8], id, f[1], false, group)
        end
        woke = true
      elseif kind == 'l' then
        local until_ms = now + math.max(delay, 0)
        -- The attempt is not consumed: the hash keeps the one from before the claim.
        redis.call('HSET', jk, 'state', 'delayed', 'error', value, 'ready', until_ms)
        redis.call('ZADD', KEYS[4], until_ms, id)
        if group then
          group_hold(prefix, group, until_ms)
        elseif (tonumber(redis.call('HGET', KEYS[8], 'hold')) or 0) < until_ms then
          redis.call('HSET', KEYS[8], 'hold', until_ms)
        end
        woke = true
      else -- 'h': the attempt is not consumed (hand_back counts the lease's one off)
        hand_back(prefix, KEYS[2], KEYS[3], KEYS[8], jk, id, attempt, f[1], now, group)
        woke = true
      end
      out[i + 1] = result
    end
  end
end
for i = 1, #forgotten, 1000 do
  redis.call('HDEL', prefix .. 'jobs', unpack(forgotten, i, math.min(i + 999, #forgotten)))
end
-- With the pad (COMPACT_PAD, as in 'jobs'): the hash stays a hash table.
if #done > 0 then done[#done + 1], done[#done + 2] = '', COMPACT_PAD end
for i = 1, #done, 2000 do
  redis.call('HSET', prefix .. 'done', unpack(done, i, math.min(i + 1999, #done)))
end
-- One ZREM and one HDEL for the whole batch: these leases are released.
if #released > 0 then
  redis.call('ZREM', KEYS[1], unpack(released))
  redis.call('HDEL', KEYS[11], unpack(released))
  -- Under a queue-wide concurrency cap, idle workers may be blocked for want of room,
  -- not of jobs: the room just freed wakes one if jobs are waiting.
  if not woke and meta[1]
    and (redis.call('LLEN', KEYS[2]) > 0 or redis.call('ZCARD', KEYS[3]) > 0) then
    woke = true
  end
end
if group_leases and groups_release(prefix, KEYS[8], group_leases) then woke = true end
retain_finished(prefix, now)
if woke then wake(KEYS[9]) end
return out
