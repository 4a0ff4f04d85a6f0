#!lua
-- claim.lua: promote due delayed jobs, then lease up to N ready jobs to a worker.
-- Flags: none, so Redis refuses the whole script (OOM) when over maxmemory: a worker
-- must not lease jobs whose leases and outcomes it could not write.
-- KEYS: [1] wait  [2] prioritized  [3] delayed  [4] active  [5] meta  [6] wake
--       [7] failed  [8] limiter  [9] events  [10] leases
-- ARGV: [1] key prefix  [2] max jobs  [3] worker id  [4] lease ms
-- Reads meta 'paused' (lease nothing), 'concurrency' (lease at most that many in all)
-- and 'rate' = "N:MS" (start at most N jobs per window of MS ms: a fixed window, counted
-- in the limiter key, which expires with it; a claim held back by it returns the
-- window's end as its next due time, so idle workers sleep until then).
-- and 'events' (the events stream's cap: with it on, one 'active' event per job leased,
-- fields attempt and worker; 'failed' for a corrupt one), all in one HMGET per call.
-- Returns: { next_delayed_due_ms (-1 if none), now_ms, first token,
--            then per claimed job 2 values: id, record }
-- The jobs' fencing tokens are consecutive: the first token, then one more a job, in
-- the reply's order. A record is "<ready_ms> <second> <spec>": a compact job's value
-- as stored in 'jobs' (compact.lua: its second part is its 'keep'; a compact job never
-- ran: attempt 1, stalled 0), or, for a job with a hash, "R<attempt>:<stalled>" as the
-- second part (no keep starts with R). So the claim copies no part of a compact value
-- and the reply carries 2 values a job, not 6 (src/scripts/claim.rs parses it). spec:
-- the job's name, run options and payload as one value, src/job/spec.rs.
-- A token is the lease's fencing token: every later write about this attempt must
-- present it. No job hash is written for a lease: the leases go into the lease table
-- (one ZADD) and the leases HASH (one HSET for the batch, see lease.lua), so a leased
-- job's hash still says 'waiting', and a compact job (compact.lua) stays compact: the
-- batch's are read with one HMGET of 'jobs'. Tokens come from the queue's sequence (field ''
-- of leases), at least now_ms * 100. Ids left in wait or delayed without a job hash (a race with remove) are
-- skipped. A job whose record is corrupt (a field it needs missing or not a number) is
-- not leased: it ends failed with the reason as its error, the rest of the batch goes on.
-- A claim that leases nothing deletes a wake key that is not a LIST (junk), so the
-- worker's BLPOP on it blocks instead of failing.
-- Meta 'hold' = ms: the queue is held until then (a handler said "rate limited, retry
-- after D" for a job without a group): nothing is leased, and the hold is the next due.
-- Groups (see common.lua), only once meta 'groups' exists: the claim takes turns, in
-- passes: each pass leases one job of each group that may start one (not held, under
-- the group concurrency and rate of meta 'groups'), least recently served first, then
-- one ungrouped job (wait list, then prioritized); passes repeat until the claim is
-- full or nothing more may start. A served group goes to the back of the line. Groups
-- found held or out of rate move to glimited until then, groups at their concurrency
-- leave the line until a lease of theirs ends. At most max + 16 groups are looked at
-- per claim.
local prefix = ARGV[1]
local max = tonumber(ARGV[2])
local now = now_ms()
local meta = redis.call('HMGET', KEYS[5], 'paused', 'concurrency', 'rate', 'events', 'hold', 'groups')
events_init(KEYS[9], meta[4])

-- The groups this claim may serve: glimited groups whose time came go back in line,
-- then the first max + 16 of the line are checked against holds and limits. Groups that
-- may not start a job leave the line (see the header). Returns the plan take_turns and
-- group_done use: per eligible group its room (jobs it may start now).
local function group_plan(prefix, meta_key, gconf, max, now)
  local conc, rn, rms = string.match(gconf, '^(%d+):(%d+):(%d+)$')
  conc, rn, rms = tonumber(conc) or 0, tonumber(rn) or 0, tonumber(rms) or 0
  if rms == 0 then rn = 0 end
  local plan = { conc = conc, rn = rn, rms = rms, groups = {}, group_of_id = {}, leased = {} }
  local gready, glimited = prefix .. 'gready', prefix .. 'glimited'
  local due = redis.call('ZRANGEBYSCORE', glimited, '-inf', now, 'LIMIT', 0, 100)
  if #due > 0 then
    redis.call('ZREM', glimited, unpack(due))
    for _, g in ipairs(due) do
      if redis.call('LLEN', prefix .. 'g:' .. g .. ':wait') > 0 then group_ready(prefix, meta_key, g) end
    end
  end
  local cands = redis.call('ZRANGE', gready, 0, max + 15)
  if #cands == 0 then return plan end
  local holds = redis.call('HMGET', prefix .. 'ghold', unpack(cands))
  local active = conc > 0 and redis.call('HMGET', prefix .. 'gactive', unpack(cands)) or {}
  local started = {}
  if rn > 0 then
    local rk = {}
    for i, g in ipairs(cands) do rk[i] = prefix .. 'g:' .. g .. ':rl' end
    started = redis.call('MGET', unpack(rk))
  end
  local leave, limited, stale = {}, {}, {}
  for i, g in ipairs(cands) do
    local h = tonumber(holds[i])
    local a = tonumber(active[i]) or 0
    local st = tonumber(started[i]) or 0
    local ttl = 0
    if rn > 0 and st >= rn then
      ttl = redis.call('PTTL', prefix .. 'g:' .. g .. ':rl')
      -- A window key without an expiry (written by hand) would block the group forever.
      if ttl <= 0 then
        redis.call('DEL', prefix .. 'g:' .. g .. ':rl')
        st = 0
      end
    end
    if h and h > now then
      leave[#leave + 1] = g
      limited[#limited + 1], limited[#limited + 2] = h, g
    else
      if holds[i] then stale[#stale + 1] = g end
      if conc > 0 and a >= conc then
        leave[#leave + 1] = g
      elseif rn > 0 and st >= rn then
        leave[#leave + 1] = g
        limited[#limited + 1], limited[#limited + 2] = now + ttl, g
      else
        local room = math.huge
        if conc > 0 then room = conc - a end
        if rn > 0 and rn - st < room then room = rn - st end
        plan.groups[#plan.groups + 1] = { g = g, room = room, active = a, started = st, n = 0, empty = false }
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', prefix .. 'ghold', unpack(stale)) end
  if #leave > 0 then redis.call('ZREM', gready, unpack(leave)) end
  if #limited > 0 then redis.call('ZADD', glimited, unpack(limited)) end
  return plan
end

-- Pops up to max ids in turns (see the header): one per eligible group per pass, then
-- one ungrouped; a lone participant takes the rest of its share at once.
local function take_turns(prefix, wait, prioritized, plan, max)
  local ids = {}
  local ungrouped = true
  while #ids < max do
    local before = #ids
    local open = 0
    for _, p in ipairs(plan.groups) do
      if not p.empty and p.n < p.room then open = open + 1 end
    end
    for _, p in ipairs(plan.groups) do
      if #ids >= max then break end
      if not p.empty and p.n < p.room then
        local want = 1
        if open == 1 and not ungrouped then want = math.min(p.room - p.n, max - #ids) end
        local got = redis.call('RPOP', prefix .. 'g:' .. p.g .. ':wait', want)
        if not got then got = {} end
        for _, id in ipairs(got) do
          ids[#ids + 1] = id
          plan.group_of_id[id] = p.g
        end
        p.n = p.n + #got
        if #got < want then p.empty = true end
      end
    end
    if ungrouped and #ids < max then
      local want = 1
      if open == 0 then want = max - #ids end
      local got = redis.call('RPOP', wait, want)
      if not got then got = {} end
      for _, id in ipairs(got) do ids[#ids + 1] = id end
      if #got < want then
        local z = redis.call('ZPOPMIN', prioritized, want - #got)
        for i = 1, #z, 2 do ids[#ids + 1] = z[i] end
        if #z / 2 < want - #got then ungrouped = false end
      end
    end
    if #ids == before then break end
  end
  return ids
end

-- After the leases: counts each served group's leases (gactive) and starts (its rate
-- window), and puts it at the back of the line, or out of it (emptied, at its
-- concurrency, out of rate until its window ends).
local function group_done(prefix, meta_key, plan, now)
  local gready = prefix .. 'gready'
  local leave, limited, back = {}, {}, {}
  for _, p in ipairs(plan.groups) do
    local l = plan.leased[p.g] or 0
    local rk = prefix .. 'g:' .. p.g .. ':rl'
    if l > 0 then
      redis.call('HINCRBY', prefix .. 'gactive', p.g, l)
      if plan.rn > 0 then
        if p.started == 0 then
          redis.call('SET', rk, l, 'PX', plan.rms)
        else
          redis.call('INCRBY', rk, l)
        end
      end
    end
    if p.n > 0 or p.empty then
      if p.empty or redis.call('LLEN', prefix .. 'g:' .. p.g .. ':wait') == 0 then
        leave[#leave + 1] = p.g
      elseif plan.conc > 0 and p.active + l >= plan.conc then
        leave[#leave + 1] = p.g
      elseif plan.rn > 0 and p.started + l >= plan.rn then
        leave[#leave + 1] = p.g
        local ttl = plan.rms
        if p.started > 0 then ttl = redis.call('PTTL', rk) end
        limited[#limited + 1], limited[#limited + 2] = now + math.max(ttl, 1), p.g
      else
        back[#back + 1] = p.g
      end
    end
  end
  if #leave > 0 then redis.call('ZREM', gready, unpack(leave)) end
  if #limited > 0 then redis.call('ZADD', prefix .. 'glimited', unpack(limited)) end
  if #back > 0 then
    local seq = redis.call('HINCRBY', meta_key, 'gseq', #back) - #back
    local z = {}
    for i, g in ipairs(back) do z[#z + 1], z[#z + 2] = seq + i, g end
    redis.call('ZADD', gready, unpack(z))
  end
end

-- The first delayed job, read once: when it is not due (or there is none) the call
-- promotes nothing and the reply's next due time is this one, with no second read.
local first_delayed = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local due = {}
if #first_delayed > 0 and tonumber(first_delayed[2]) <= now then
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
  first_delayed = nil
end
if #due > 0 then
  local fields = { 'pri', 'state', 'keep' }
  for _, id in ipairs(due) do
    local jk = prefix .. 'job:' .. id
    local f, corrupt = read_job(jk, fields)
    if f and corrupt then
      fail_corrupt(prefix, KEYS[7], jk, id, corrupt, now)
    elseif f then
      push_job(prefix, KEYS[1], KEYS[2], KEYS[5], id, f[1], false, group_of(f[3]))
      redis.call('HSET', jk, 'state', 'waiting')
    end
  end
  redis.call('ZREM', KEYS[3], unpack(due))
end

local out = { -1, now, 0 }
local PAD = ' ' .. string.rep('-', 64)
-- A queue-wide cap on active jobs (meta 'concurrency', set by Queue::set_concurrency):
-- lease no more than the room left under it, counted in the lease table, so it holds
-- exactly across every worker (a claim is atomic) and frees itself as leases go.
local hold = tonumber(meta[5])
if hold and hold <= now then hold = nil end
local gconf = meta[6]
local cap = tonumber(meta[2])
if cap and cap > 0 then
  local room = cap - lease_count(KEYS[4])
  if room < max then max = room end
end
local rate_n, rate_ms = string.match(meta[3] or '', '^(%d+):(%d+)$')
rate_n, rate_ms = tonumber(rate_n), tonumber(rate_ms)
local started = 0
if rate_n and rate_ms and rate_ms > 0 then
  started = tonumber(redis.call('GET', KEYS[8])) or 0
  local room = rate_n - started
  if room < max then max = room end
else
  rate_n = nil
end
local held_until, leased = hold, 0
local plan = nil
if meta[1] ~= '1' and not hold and max > 0 then
  local ids
  if gconf then
    plan = group_plan(prefix, KEYS[5], gconf, max, now)
    ids = take_turns(prefix, KEYS[1], KEYS[2], plan, max)
  else
    ids = redis.call('RPOP', KEYS[1], max)
    if not ids then ids = {} end
    if #ids < max then
      local z = redis.call('ZPOPMIN', KEYS[2], max - #ids)
      for i = 1, #z, 2 do ids[#ids + 1] = z[i] end
    end
  end
  -- Redis turns a Lua number argument into text (sprintf "%.17g") at every call: the
  -- batch's numbers once here, as text.
  local deadline = string.format('%d', now + tonumber(ARGV[4]))
  local now_s = tostring(now)
  local leases = {}
  local fields = { 'spec', 'ready', 'ts', 'stalled', 'attempt' }
  local worker = ARGV[3]
  -- What every lease entry of the batch ends with: ":<started>:<worker>".
  local tail = ':' .. now_s .. ':' .. worker
  -- The fencing tokens of this batch: the queue's sequence on, never below now * 100
  -- (so a sequence deleted by hand never hands out a token again). Read only once
  -- there are ids; written with the leases.
  local seq = 0
  if #ids > 0 then
    local last = redis.call('HGET', KEYS[10], '')
    seq = math.max(tonumber(last and string.match(last, '^%d+')) or 0, now * 100)
    -- The first token of the reply: each job leased takes the next one (a corrupt job
    -- skipped takes none), so the batch's tokens are consecutive from it.
    out[3] = seq + 1
  end
  local entries = { '', 0 }
  -- The compact jobs among them (compact.lua), in one HMGET.
  local packed = #ids > 0 and redis.call('HMGET', prefix .. 'jobs', unpack(ids)) or ids
  -- One table for every compact job of the call, rewritten for each.
  local cf = { false, false, 0, 0, 0 }
  for i, id in ipairs(ids) do
    -- f: 1 spec, 2 ready, 3 ts, 4 stalled, 5 attempt
    local f, corrupt, ts = nil, nil, nil
    local v = packed[i]
    if v then
      -- A waiting compact value (compact_parts): ts, a whole number below 1e15 in
      -- digits, then keep, then spec. Checked in place: the record is the value itself.
      local a = string.byte(v) ~= 67 and string.find(v, ' ', 1, true)
      if a and a <= 16 and string.find(v, ' ', a + 1, true) and string.find(v, '^%d+ ') then
        f = cf
        f[1] = v
      else
        expand(prefix, id, v)
      end
    end
    if not f then
      local jk = prefix .. 'job:' .. id
      f = redis.call('HMGET', jk, unpack(fields))
      -- A job never run yet (spec and ts only, ts a whole number) is checked right
      -- here: check_job's loop over the five fields cost about 6 800 instructions a job.
      ts = not (f[2] or f[4] or f[5]) and f[1] and tonumber(f[3])
      if ts and ts >= 0 and ts < 1e15 and ts % 1 == 0 then
        f[3], f[4], f[5] = ts, 0, 0
      else
        f, corrupt = check_job(jk, fields, f)
        if f and not corrupt and not (f[2] or f[3]) then corrupt = corrupt_reason('ts', f[3]) end
      end
    end
    if f and corrupt then
      fail_corrupt(prefix, KEYS[7], prefix .. 'job:' .. id, id, corrupt, now)
    elseif f then
      if plan then
        local g = plan.group_of_id[id]
        if g then plan.leased[g] = (plan.leased[g] or 0) + 1 end
      end
      seq = seq + 1
      local token, attempt = seq, f[5] + 1
      -- %d: tostring would write a 15-digit token as 1.7e+14.
      local e = #entries
      entries[e + 1] = id
      -- A job's first attempt (every compact job's): one number to format, not two.
      entries[e + 2] = attempt == 1 and string.format('%d:1%s', token, tail)
        or string.format('%d:%d%s', token, attempt, tail)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      local n = #out
      out[n + 1] = id
      if f == cf then
        out[n + 2] = v
      else
        out[n + 2] = string.format('%d R%d:%d ', f[2] or f[3], attempt, f[4]) .. f[1]
      end
      -- Guarded here: a call of emit with its six arguments costs even when it returns.
      if events_key then emit('active', id, 'attempt', attempt, 'worker', worker) end
    end
  end
  -- One ZADD for the whole batch: the lease table; one HSET: the leases and the
  -- sequence.
  if #leases > 0 then
    leases[#leases + 1], leases[#leases + 2] = '+inf', ACTIVE_KEEPER
    redis.call('ZADD', KEYS[4], unpack(leases))
    -- Padded past hash-max-listpack-value (64 bytes): the leases hash stays a hash
    -- table, where a batch's HSET, HMGET and HDEL cost O(1) a field instead of a scan
    -- of the listpack each.
    entries[2] = string.format('%d', seq) .. PAD

    redis.call('HSET', KEYS[10], unpack(entries))
  end
  leased = #leases > 0 and #leases / 2 - 1 or 0
  if rate_n and #leases > 0 then
    if started == 0 then
      redis.call('SET', KEYS[8], leased, 'PX', rate_ms)
    else
      redis.call('INCRBY', KEYS[8], leased)
    end
  end
  if plan then group_done(prefix, KEYS[5], plan, now) end
  -- A full claim may leave jobs for idle workers: wake one, unless a wake-up token is
  -- already there (a busy worker's steady state: one TYPE, no look at the lists; a
  -- wake key of another type is junk, which wake replaces).
  local wt = #ids == max and redis.call('TYPE', KEYS[6])
  if wt and (wt.ok or wt) ~= 'list'
    and (redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0
    or (plan and redis.call('ZCARD', prefix .. 'gready') > 0)) then
    wake(KEYS[6])
  end
end
-- Held back by the rate limit with jobs waiting: idle workers sleep until the window ends.
if rate_n and started + leased >= rate_n and meta[1] ~= '1'
  and (redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0) then
  local ttl = redis.call('PTTL', KEYS[8])
  if ttl > 0 then held_until = now + ttl end
end
retain_finished(prefix, now)
-- Nothing leased: the worker blocks on the wake key next.
if #out == 3 then clear_junk_wake(KEYS[6]) end
-- Nothing this call did adds to delayed: the first read stands unless it promoted.
local next_due = first_delayed or redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #next_due > 0 then out[1] = tonumber(next_due[2]) end
if gconf and not hold then
  local first = redis.call('ZRANGE', prefix .. 'glimited', 0, 0, 'WITHSCORES')
  local t = #first > 0 and tonumber(first[2])
  if t and (not held_until or t < held_until) then held_until = math.max(t, now) end
end
if held_until and (out[1] < 0 or held_until < out[1]) then out[1] = held_until end
return out
