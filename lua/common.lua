-- common.lua: helpers put into every baton script, after the script's own `#!lua` line
-- (see src/scripts/mod.rs).
-- Nothing here touches a key that the calling script did not declare, except a job's
-- own keys, which share the queue's hash tag and so its cluster slot.
--
-- Read and check before writing: Redis does not roll back a script that fails half-way,
-- so a script converts and checks every job field it needs (read_job) before its first
-- write about that job, and a job whose record is corrupt fails alone (fail_corrupt).

-- Redis's own clock in milliseconds, so pods with skewed clocks agree on leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local PRIORITY_SCALE = 4294967296

-- A job's retention, stored as one field 'keep' = "kc:kca:kf:kfa": how many completed
-- and failed/cancelled jobs to keep (-1 = all) and their maximum age in ms (0 = none).
-- After them, optional tails: "|g<group>" for a job of a group (group names hold no
-- '|'), then "|p..." for a child of a flow (see parent_of), then "|<mode><key>" for a
-- job added with a dedup key (mode 's' simple, 't' ttl, 'd' debounce): the field every
-- finishing script reads anyway, so a job without them costs no extra field. Returns
-- the four numbers, the tail after the group ('' for none: the parent and dedup tails,
-- see split_tail) and the group (nil for none). Anything else reads as "keep all", the
-- safe side.
-- Memoized per script call: the jobs of a batch mostly share one policy, and the match
-- and four number conversions cost about 3 000 instructions a job (callgrind).
local keep_memo = {}

local function keep_of(keep)
  keep = keep or ''
  local m = keep_memo[keep]
  if m then return m[1], m[2], m[3], m[4], m[5], m[6] end
  local kc, kca, kf, kfa, rest = string.match(keep, '^(-?%d+):(%d+):(-?%d+):(%d+)(.*)$')
  if not kc or (rest ~= '' and string.byte(rest) ~= 124) then return -1, 0, -1, 0, '', nil end
  local group = nil
  if string.byte(rest, 2) == 103 then -- "|g<group>", then perhaps a dedup tail
    local e = string.find(rest, '|', 3, true)
    if e then
      group, rest = string.sub(rest, 3, e - 1), string.sub(rest, e)
    else
      group, rest = string.sub(rest, 3), ''
    end
  end
  m = { tonumber(kc), tonumber(kca), tonumber(kf), tonumber(kfa), rest, group }
  -- A plain policy is shared by many jobs; one with tails (group, parent, dedup key)
  -- rarely is, and is not kept (a batch of distinct keys would only grow the table).
  if rest == '' and not group then keep_memo[keep] = m end
  return m[1], m[2], m[3], m[4], m[5], m[6]
end

-- A queue's key prefix from its name, and back: the Lua mirror of Keys::new in
-- src/keys.rs ("baton:{<queue>}:"), used only where a flow reaches a job of another
-- queue (its parent or its children, in the same Cluster slot: src/queue/flow.rs).
local function prefix_of(queue)
  return 'baton:{' .. queue .. '}:'
end

local function queue_of(prefix)
  return string.sub(prefix, 8, -3)
end

-- A flow child's parent, from the tail keep_of returns: "|p<policy><qlen>:<idlen>:
-- <queue><id>" (lengths in bytes, so neither may hold '|' safely or not; qlen 0: the
-- parent is on the child's own queue). policy 'f': the child failing for good fails the
-- parent; 'i': the parent runs anyway. Returns { queue, id, policy } or nil, and the
-- rest of the tail (the dedup tail, or '').
local function split_tail(tail)
  if string.byte(tail, 2) ~= 112 then return nil, tail end -- not "|p"
  local policy, ql, il, at = string.match(tail, '^|p([fi])(%d+):(%d+):()')
  if not policy then return nil, '' end
  ql, il = tonumber(ql), tonumber(il)
  local p = { queue = string.sub(tail, at, at + ql - 1),
    id = string.sub(tail, at + ql, at + ql + il - 1), policy = policy }
  return p, string.sub(tail, at + ql + il)
end

-- Releases job `id`'s dedup key (`dd`: keep_of's tail, the dedup part "|<mode><key>"
-- after any parent tail) if it still names the job: a later job may stand under the key
-- now (debounce re-points it when the job it named had started). A ttl key ('t') stands
-- for its time whatever its job does, unless `any` (the job is removed). pcall: a key of
-- another type (junk) is not ours to fail on.
local function release_dedup(prefix, id, dd, any)
  local _, rest = split_tail(dd)
  dd = rest
  if dd == '' then return end
  local mode = string.sub(dd, 2, 2)
  if mode == 't' and not any then return end
  local dk = prefix .. 'dedup:' .. string.sub(dd, 3)
  if redis.pcall('GET', dk) == id then redis.call('DEL', dk) end
end

-- The job hash fields a script converts to numbers, and what an absent one means. A
-- present one must read as a non-negative integer below 10^15 (exact as a Lua number);
-- 'ready' and 'ts' have no default.
local INT_FIELDS = { attempt = 0, stalled = 0, token = 0, pri = 0, ready = false, ts = false }
-- The fields a job cannot run without.
local REQUIRED = { spec = true, state = true }

-- A job's spec (src/job/spec.rs): its name, run options and payload as one hash field,
-- "<name> NUL <opts length>:<opts><data>", written by the producer; the scripts pass it
-- on whole and look inside only here.
-- The length of the spec's head (name, NUL, length, opts), or nil for a malformed one.
-- Not checked on the claim (about 3 500 instructions a job): the worker decodes the
-- spec it is handed and fails a job whose spec is malformed (src/scripts/mod.rs).
local function spec_head(spec)
  local nul = string.find(spec, '\0', 1, true)
  if not nul then return nil end
  local len = string.match(spec, '^(%d+):', nul + 1)
  if not len then return nil end
  local h = nul + #len + 1 + tonumber(len)
  if h > #spec then return nil end
  return h
end

-- The job name in a spec (for events): up to its first NUL.
local function spec_name(spec)
  local e = string.find(spec, '\0', 1, true)
  return e and string.sub(spec, 1, e - 1) or spec
end

-- The payload in a spec.
local function spec_data(spec)
  local h = spec_head(spec)
  return h and string.sub(spec, h + 1) or ''
end

-- Spec `old` with the payload of spec `new` (a debounced add: the standing job keeps
-- its name and options).
local function spec_with_data(old, new)
  local h = spec_head(old)
  if not h then return new end
  return string.sub(old, 1, h) .. spec_data(new)
end

-- A job written before the field 'spec' has 'name', 'data' and 'opts' instead: moved
-- into 'spec' the first time a script reads it (check_job), so the rest of baton reads
-- one layout. Returns the spec, or nil when one of the three is missing too.
local function legacy_spec(jk)
  local f = redis.call('HMGET', jk, 'name', 'data', 'opts')
  if not (f[1] and f[2] and f[3]) then return nil end
  local spec = f[1] .. '\0' .. #f[3] .. ':' .. f[3] .. f[2]
  redis.call('HSET', jk, 'spec', spec)
  redis.call('HDEL', jk, 'name', 'data', 'opts')
  return spec
end

local function corrupt_reason(name, v)
  if not v then return 'corrupt job record: field ' .. name .. ' is missing' end
  if #v > 64 then v = string.sub(v, 1, 64) .. '...' end
  return 'corrupt job record: field ' .. name .. " is '" .. v .. "'"
end

-- Checks fields `names` of job hash `jk` as HMGET returned them (`raw`, same order) and
-- converts them in place: integer fields (INT_FIELDS) to numbers, absent ones to their
-- default; other fields stay strings, absent ones false. Returns:
--   nil                  the hash does not exist at all (a race with remove: skip it)
--   raw, nil             all fine
--   raw, reason          the record is corrupt; reason says which field and how
-- Only reads (but for moving a job from before the spec field to it, which changes
-- no meaning), so a caller calls it before its first write about the job. In place and
-- by index, not into a table by name: this runs for every job of every claim.
local function check_job(jk, names, raw)
  local reason, missing = nil, false
  for i = 1, #names do
    local name, v = names[i], raw[i]
    local default = INT_FIELDS[name]
    if default ~= nil then
      if v then
        local n = tonumber(v)
        if n and n >= 0 and n < 1e15 and n % 1 == 0 then
          raw[i] = n
        else
          reason = reason or corrupt_reason(name, v)
        end
      else
        raw[i] = default
      end
    elseif not v and REQUIRED[name] then
      if name == 'spec' then
        v = legacy_spec(jk)
        raw[i] = v or false
      end
      if not v then
        missing = true
        reason = reason or corrupt_reason(name, v)
      end
    end
  end
  -- A required field missing may mean the whole hash is gone; tell the two apart only
  -- then, so the common path costs no extra command.
  if missing and redis.call('EXISTS', jk) == 0 then return nil end
  return raw, reason
end

-- HMGET of `names` and check_job.
local function read_job(jk, names)
  return check_job(jk, names, redis.call('HMGET', jk, unpack(names)))
end

-- Deletes a job and everything stored under it. A job's keys are `job:<id>`,
-- `steps:<id>`, `logs:<id>` and `errors:<id>`: distinct prefixes, so no job id can name
-- another job's keys (with `job:<id>:steps`, job "a:steps" would be job "a"'s steps).
local function delete_job(prefix, id)
  redis.call('DEL', prefix .. 'job:' .. id, prefix .. 'steps:' .. id, prefix .. 'logs:' .. id,
    prefix .. 'errors:' .. id)
end

-- Notes in job hash `jk` that a key of its own besides the hash (steps, logs, errors)
-- was created: the writer of each calls this when it creates one, and finish.lua, which
-- reads the field, deletes those keys only for a job that has it (finish_job_side).
local function mark_side(jk)
  redis.call('HSET', jk, 'side', '1')
end

-- How many attempts' errors a job keeps in `errors:<id>` (newest first).
local ERROR_HISTORY = 25

-- Records the error of one attempt in the job's bounded history (LIST `errors:<id>`,
-- newest first, entries "<attempt>:<ms>:<error>"). Only retry and fail outcomes call
-- it, never a completion: the hot path pays nothing. One LPUSH; the LTRIM only once the
-- list is over its bound.
local function record_error(prefix, id, attempt, now, value)
  local key = prefix .. 'errors:' .. id
  local len = redis.call('LPUSH', key, (attempt or 0) .. ':' .. now .. ':' .. value)
  if len == 1 then mark_side(prefix .. 'job:' .. id) end
  if len > ERROR_HISTORY then
    redis.call('LTRIM', key, 0, ERROR_HISTORY - 1)
  end
end

-- Removes and deletes members of a finished set, at most 1000 a call: one DEL and one
-- ZREM for them all (each write command inside a script is propagated to the AOF on its
-- own, which costs Redis more than the write itself).
local function drop_members(set, prefix, ids)
  if #ids == 0 then return 0 end
  -- A kept completion may be a compact job (lua/compact.lua): a field of 'jobs' and
  -- its outcome in 'done', no key of its own. The batch's outcomes go first, with one
  -- HDEL: when it deletes as many as asked (the steady state: every trimmed job
  -- compact), their values go with one HDEL of 'jobs', nothing read. Otherwise the
  -- values are asked of 'jobs' (a compact job of session 9 held its outcome in its
  -- value: compact_done), and the ids without one are jobs with a hash.
  local jobs, done = prefix .. 'jobs', prefix .. 'done'
  local compact, keys = ids, {}
  if redis.call('HDEL', done, unpack(ids)) < #ids then
    compact = {}
    local packed = redis.call('HMGET', jobs, unpack(ids))
    for i, id in ipairs(ids) do
      if packed[i] then
        compact[#compact + 1] = id
      else
        local jk = prefix .. 'job:' .. id
        local n = #keys
        keys[n + 1] = jk
        -- Its steps, logs and errors keys only if it has any (mark_side): one HGET
        -- costs less than three more keys in the DEL and its AOF entry.
        if redis.call('HGET', jk, 'side') then
          keys[n + 2], keys[n + 3] = prefix .. 'steps:' .. id, prefix .. 'logs:' .. id
          keys[n + 4] = prefix .. 'errors:' .. id
        end
      end
    end
  end
  if #keys > 0 then redis.call('DEL', unpack(keys)) end
  if #compact > 0 then redis.call('HDEL', jobs, unpack(compact)) end
  redis.call('ZREM', set, unpack(ids))
  return #ids
end

-- Applies a retention policy to a finished set: keep at most `count` (-1 = all) and
-- nothing older than `age` ms (0 = no age limit).
local function trim(set, prefix, count, age, now)
  if age > 0 then
    drop_members(set, prefix, redis.call('ZRANGEBYSCORE', set, '-inf', now - age, 'LIMIT', 0, 1000))
  end
  if count >= 0 then
    local excess = redis.call('ZCARD', set) - count
    if excess > 0 then
      if excess > 1000 then excess = 1000 end
      drop_members(set, prefix, redis.call('ZRANGE', set, 0, excess - 1))
    end
  end
end

-- Leaves one wake-up token for a blocked idle worker (never more than one). A wake key
-- of another type (junk written by hand) is replaced: it is baton's own key, holds
-- nothing but the token, and left alone it would fail every script that wakes (after
-- that script's writes) and every blocked worker's BLPOP. pcall, so the common path
-- costs no extra command.
local function wake(wake_key)
  local n = redis.pcall('LLEN', wake_key)
  if type(n) == 'table' then
    redis.call('DEL', wake_key)
    n = 0
  end
  if n == 0 then redis.call('LPUSH', wake_key, '1') end
end

-- Deletes a wake key of another type than LIST, so that a worker's BLPOP on it blocks
-- instead of failing with WRONGTYPE (see wake). One TYPE: for claims that found nothing.
local function clear_junk_wake(wake_key)
  local t = redis.call('TYPE', wake_key)
  t = t.ok or t
  if t ~= 'list' and t ~= 'none' then redis.call('DEL', wake_key) end
end

-- Makes a job ready. `front` puts it first in line (recovered or handed-back jobs).
-- `pri` must be a checked number (read_job).
local function push_ready(wait, prioritized, meta, id, pri, front)
  if pri > 0 then
    local seq = 0
    if not front then seq = redis.call('HINCRBY', meta, 'pseq', 1) % PRIORITY_SCALE end
    redis.call('ZADD', prioritized, pri * PRIORITY_SCALE + seq, id)
  elseif front then
    redis.call('RPUSH', wait, id)
  else
    redis.call('LPUSH', wait, id)
  end
end

-- Groups (a job's `group` option, e.g. a tenant). A grouped job's group is the tail of
-- its 'keep' field, "kc:kca:kf:kfa|group", a field the scripts that end or move a lease
-- read anyway, so a job without a group costs no extra command. Its keys share the
-- queue's hash tag (built from the prefix, like a job's own keys):
--   g:<group>:wait  LIST of the group's ready ids (LPUSH new, RPUSH first in line, RPOP)
--   g:<group>:rl    STRING: the group's starts in its current rate window (PX window)
--   gready          ZSET group -> serve sequence: groups that may have ready jobs, least
--                   recently served first (claim.lua's round-robin)
--   glimited        ZSET group -> ms: groups with ready jobs held back until then (their
--                   rate window is used up, or a handler asked to hold the group)
--   gactive         HASH group -> its leased jobs (absent = 0)
--   ghold           HASH group -> ms: the group is held until then (retry after D)
-- A group with ready jobs that is in neither ZSET is at its concurrency: the release of
-- one of its leases (group_release) puts it back in gready. meta 'groups' =
-- "concurrency:rate_n:rate_ms" (0 = none) exists once a grouped job was added or group
-- limits were set: claim.lua looks at groups only then. meta 'gseq' is the sequence.

-- The job's group, or nil, from its 'keep' field.
local function group_of(keep)
  if not keep or not string.find(keep, '|', 1, true) then return nil end
  local _, _, _, _, _, group = keep_of(keep)
  return group
end

-- Puts a group with ready jobs in line to be served (if it is not), behind the groups
-- served so far. claim.lua checks its limits and holds when it comes up.
local function group_ready(prefix, meta, group)
  local seq = tonumber(redis.call('HGET', meta, 'gseq')) or 0
  redis.call('ZADD', prefix .. 'gready', 'NX', seq, group)
end

-- Makes a grouped job ready: into its group's list, first in line if `front`.
local function push_group(prefix, meta, group, id, front)
  local n
  if front then
    n = redis.call('RPUSH', prefix .. 'g:' .. group .. ':wait', id)
  else
    n = redis.call('LPUSH', prefix .. 'g:' .. group .. ':wait', id)
  end
  if n == 1 then group_ready(prefix, meta, group) end
end

-- push_ready for a job that may have a group (priority is not used within a group).
local function push_job(prefix, wait, prioritized, meta, id, pri, front, group)
  if group then
    push_group(prefix, meta, group, id, front)
  else
    push_ready(wait, prioritized, meta, id, pri, front)
  end
end

-- `n` leases of `group` ended: count them off and, if the group has ready jobs, put it
-- in line again (it may have been at its concurrency). Returns true if it has some.
local function group_release(prefix, meta, group, n)
  if redis.call('HINCRBY', prefix .. 'gactive', group, -n) <= 0 then
    redis.call('HDEL', prefix .. 'gactive', group)
  end
  if redis.call('LLEN', prefix .. 'g:' .. group .. ':wait') > 0 then
    group_ready(prefix, meta, group)
    return true
  end
  return false
end

-- Releases the leases counted in `released` (group -> n). Returns true if a group has
-- ready jobs (wake a worker).
local function groups_release(prefix, meta, released)
  local ready = false
  for group, n in pairs(released) do
    if group_release(prefix, meta, group, n) then ready = true end
  end
  return ready
end

-- Removes a waiting job from its group's list (cancel, remove). An emptied group stays
-- in gready until a claim finds it empty.
local function group_unlist(prefix, group, id)
  redis.call('LREM', prefix .. 'g:' .. group .. ':wait', 0, id)
end

-- Holds a group until `until_ms`: no job of it starts before then (retry after D).
local function group_hold(prefix, group, until_ms)
  local h = prefix .. 'ghold'
  local old = tonumber(redis.call('HGET', h, group))
  if old and old >= until_ms then return end
  redis.call('HSET', h, group, until_ms)
  redis.call('ZREM', prefix .. 'gready', group)
  redis.call('ZADD', prefix .. 'glimited', until_ms, group)
end

-- Hands a job back: first in line again, the attempt not consumed (a shutdown, a lost
-- claim reply, an expired lease). `attempt` and `pri` are the job's, checked
-- (check_job); `group` its group or nil. The caller has taken the job out of the lease
-- table (and counts its group's lease off).
local function hand_back(prefix, wait, prioritized, meta, jk, id, attempt, pri, now, group)
  if attempt > 0 then attempt = attempt - 1 end
  redis.call('HSET', jk, 'state', 'waiting', 'ready', now, 'attempt', attempt)
  push_job(prefix, wait, prioritized, meta, id, pri, true, group)
end

-- Flows (src/queue/flow.rs): defined after finish_job, which it calls in turn.
local child_finished

-- The retention policies of the finished sets this script added to, applied once at
-- the end of the script (retain_finished): a batch trims each set once.
local retained = {}

-- Jobs whose retention keeps none of their kind: their keys, deleted by
-- retain_finished with one DEL for the whole batch.
local doomed = {}

-- Dooms job `id` (hash `jk`): its hash, and its steps, logs and errors keys when
-- `side` says it has any (mark_side).
local function doom(prefix, jk, id, side)
  local n = #doomed
  doomed[n + 1] = jk
  if side then
    doomed[n + 2], doomed[n + 3] = prefix .. 'steps:' .. id, prefix .. 'logs:' .. id
    doomed[n + 4] = prefix .. 'errors:' .. id
  end
end

-- Finished set -> { score, id, ... } of the jobs finish_job kept, added by
-- retain_finished with one ZADD per set.
local entering = {}

-- `now` as text, made once: Redis formats a Lua number argument anew at every call.
local finished_text = nil

-- The policy finish_job_side noted last (an entry of `retained`).
local retained_last = nil

-- Notes kept job `id` for its finished set `set` (added by retain_finished, at
-- finished_text, which the caller has set) and the set's retention (count, age).
local function enter_finished(prefix, set, id, count, age)
  local members = entering[set]
  if not members then
    members = {}
    entering[set] = members
  end
  -- The score as text (Redis would format a number anew for each member), and the
  -- policy noted once per run of jobs sharing it (a key built per job cost more than
  -- the ZADD member).
  members[#members + 1], members[#members + 2] = finished_text, id
  local last = retained_last
  if not (last and last[1] == set and last[2] == count and last[3] == age) then
    last = { set, count, age, prefix }
    retained[set .. '|' .. count .. '|' .. age] = last
    retained_last = last
  end
end

-- Finishes a job: moves it to a finished set and records why, then notes the set's
-- retention for retain_finished. `keep` is the job's own (count, age) for that set
-- (keep_of). A job whose retention keeps none of its kind is deleted instead (by
-- retain_finished, at the end of the script) and trims nothing: the other finished
-- jobs are not its business. Returns true if kept.
-- `dd` is the job's dedup tail (keep_of): a simple or debounce key naming the job is
-- released here, so every way a job finishes releases it.
-- Every script that finishes a job calls this and retain_finished, nothing else.
-- `...`: more field/value pairs for the same HSET (the ended lease's, see lease.lua).
-- A flow child (a parent tail in `dd`) tells its parent (child_finished).
-- finish_job_side takes `side` first: false when the job's hash has no field 'side',
-- so none of steps, logs and errors was ever written (their writers set it, see
-- mark_side), and a job deleted here is its hash alone: three keys fewer in the DEL
-- (and in its AOF entry), a sixth of an unkept completion's cost. finish_job is for
-- the callers that did not read the field: every key goes.
local function finish_job_side(side, prefix, set, jk, id, state, field, value, now, count, age, dd, ...)
  if dd ~= '' then
    release_dedup(prefix, id, dd, false)
    local parent = split_tail(dd)
    if parent then child_finished(prefix, id, parent, state, value, now) end
  end
  if count == 0 then
    doom(prefix, jk, id, side)
    return false
  end
  finished_text = finished_text or tostring(now)
  redis.call('HSET', jk, 'state', state, field, value, 'finished', finished_text, ...)
  enter_finished(prefix, set, id, count, age)
  return true
end

local function finish_job(...)
  return finish_job_side(true, ...)
end

-- Adds the jobs finish_job kept to their finished sets, applies the retention it noted
-- and deletes the jobs it doomed; call once, at the end of the script.
local function retain_finished(prefix, now)
  for set, members in pairs(entering) do
    for i = 1, #members, 2000 do
      redis.call('ZADD', set, unpack(members, i, math.min(i + 1999, #members)))
    end
  end
  for _, p in pairs(retained) do trim(p[1], p[4], p[2], p[3], now) end
  for i = 1, #doomed, 4000 do
    redis.call('DEL', unpack(doomed, i, math.min(i + 3999, #doomed)))
  end
end

-- The events stream (keys.rs: events): on when the queue's meta field 'events' holds
-- its length cap (set by Queue::set_events), off when absent or 0. A script reads that
-- field once per call (with a read it makes anyway where it can) and hands it, with the
-- stream's key, to events_init; emit then costs nothing while off, and one XADD (with
-- an approximate MAXLEN trim) per event while on.
local events_key, events_max = nil, nil

local function events_init(key, max)
  local n = tonumber(max)
  if n and n > 0 then events_key, events_max = key, tostring(math.floor(n)) end
end

-- Adds one event: its name, the job id, then field/value pairs.
local function emit(event, id, ...)
  if events_key then
    redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'event', event, 'id', id, ...)
  end
end

-- Fails a job whose record is corrupt (check_job's reason), under its failed retention.
-- Writes only fields that need no conversion.
local function fail_corrupt(prefix, failed, jk, id, reason, now)
  local _, _, kf, kfa, dd = keep_of(redis.call('HGET', jk, 'keep'))
  finish_job(prefix, failed, jk, id, 'failed', 'error', reason, now, kf, kfa, dd)
  emit('failed', id, 'error', reason)
end

-- Flows (src/queue/flow.rs). A parent waits in state 'waiting-children' (in its
-- queue's ZSET `waiting-children`, by the time it was added) with 'deps' = its children
-- not yet done, and one field per child in its own job hash, "\t<queue>\t<id>" (no
-- queue name or job id holds a tab, and no other field starts with one) -> '' while
-- pending, 'r'..result once completed, 'e'..error once failed or cancelled: in the job
-- hash, so deleting any job costs no extra key. A child's parent is the "|p" tail of its 'keep'
-- field (split_tail). Every job of a flow is in one Cluster slot (the Rust side checks
-- before adding), so a script may reach the parent's and children's keys.

-- All children of a parent are done: it becomes ready (its delay is not used). `...`:
-- more fields of the parent to write in the same HSET (one write command, one AOF entry).
local function release_parent(pp, pid, pjk, keep, pri, now, ...)
  redis.call('ZREM', pp .. 'waiting-children', pid)
  redis.call('HSET', pjk, 'state', 'waiting', 'ready', now, ...)
  push_job(pp, pp .. 'wait', pp .. 'prioritized', pp .. 'meta', pid, tonumber(pri) or 0, false,
    group_of(keep))
  wake(pp .. 'wake')
end

-- Child `id` of queue `prefix` finished for good as `state` with `value` (its result, or
-- its error): recorded in its parent's job hash, once (a child not pending there was
-- recorded before, or its parent is gone). A parent still waiting either fails (a
-- child failed or was cancelled under policy 'f': through finish_job, so its own parent
-- hears of it in turn) or counts the child off and, at the last, becomes ready. One
-- HMGET and one HSET of the parent per child (the outcome and the count together).
child_finished = function(prefix, id, p, state, value, now)
  local pp = p.queue == '' and prefix or prefix_of(p.queue)
  local pjk = pp .. 'job:' .. p.id
  local ref = '\t' .. queue_of(prefix) .. '\t' .. id
  local f = redis.call('HMGET', pjk, ref, 'state', 'deps', 'keep', 'pri')
  if f[1] ~= '' then return end
  local ok = state == 'completed'
  local out = (ok and 'r' or 'e') .. value
  if f[2] ~= 'waiting-children' then
    redis.call('HSET', pjk, ref, out)
  elseif not ok and p.policy == 'f' then
    redis.call('HSET', pjk, ref, out)
    redis.call('ZREM', pp .. 'waiting-children', p.id)
    local _, _, kf, kfa, dd = keep_of(f[4])
    local why = 'child ' .. queue_of(prefix) .. '/' .. id .. ' ' .. state .. ': ' .. value
    finish_job(pp, pp .. 'failed', pjk, p.id, 'failed', 'error', why, now, kf, kfa, dd)
    if pp == prefix then emit('failed', p.id, 'error', why) end
  else
    local left = (tonumber(f[3]) or 1) - 1
    if left > 0 then
      redis.call('HSET', pjk, ref, out, 'deps', left)
    else
      release_parent(pp, p.id, pjk, f[4], f[5], now, ref, out, 'deps', 0)
    end
  end
end

-- Child `id` of queue `prefix` was removed before it finished: its parent no longer
-- waits for it (the entry goes; the last one releases the parent).
local function child_removed(prefix, id, p, now)
  local pp = p.queue == '' and prefix or prefix_of(p.queue)
  local pjk = pp .. 'job:' .. p.id
  local ref = '\t' .. queue_of(prefix) .. '\t' .. id
  local f = redis.call('HMGET', pjk, ref, 'state', 'deps', 'keep', 'pri')
  if f[1] ~= '' then return end
  redis.call('HDEL', pjk, ref)
  if f[2] ~= 'waiting-children' then return end
  local left = (tonumber(f[3]) or 1) - 1
  if left > 0 then
    redis.call('HSET', pjk, 'deps', left)
  else
    release_parent(pp, p.id, pjk, f[4], f[5], now, 'deps', 0)
  end
end
