#!lua
-- flow.lua: add a flow (a tree of jobs: parents wait for their children) atomically.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] the root's queue meta (routes the call to the flow's Cluster slot; every
--       job of the flow is in that slot: src/queue/flow.rs checks before sending)
-- ARGV: [1] number of jobs n, then n groups of 9, parents before their children:
--       queue prefix, id, spec (name, run options and payload: src/job/spec.rs), delay_ms,
--       priority, keep ("kc:kca:kf:kfa", then the "|g<group>" and "|p..." tails: see
--       keep_of and split_tail in common.lua), parent (1-based index of the job's parent
--       in this call, 0 for the root), children (how many children it has), fresh ('1':
--       an id the producer just made, a random UUID, which cannot exist and is not looked
--       up; '0': the caller's)
-- A job with children is written in state 'waiting-children' (ZSET `waiting-children`,
-- by the time it was added), with 'deps' = its children and a field naming each
-- ("\t<queue>\t<id>" = '', pending; see common.lua on flows); the others as add.lua writes a job (waiting, delayed, grouped, with a
-- priority), with a wake-up token for each queue that got a ready job.
-- Everything is checked before the first write: if the root's id exists the flow was
-- added before and nothing changes (an add sent again); another existing id refuses
-- the whole flow.
-- Returns: { 1 } added; { 0 } the root exists, nothing changed; { -1, id } a job of
-- that id (not the root) exists, nothing changed.
-- Events (each queue's meta 'events' on): 'added' per job (fields name, and parent or
-- delayed).
local n = tonumber(ARGV[1])
local W = 9
for i = 0, n - 1 do
  local b = 2 + i * W
  if ARGV[b + 8] ~= '1' and job_exists(ARGV[b], ARGV[b + 1]) then
    if i == 0 then return { 0 } end
    return { -1, ARGV[b + 1] }
  end
end
local now = now_ms()
local queues = {}
local function queue(prefix)
  local q = queues[prefix]
  if not q then
    local m = redis.call('HMGET', prefix .. 'meta', 'created', 'events')
    if not m[1] then redis.call('HSETNX', prefix .. 'meta', 'created', now) end
    local max = tonumber(m[2])
    q = { events = max and max > 0 and tostring(math.floor(max)) or nil, ready = {} }
    queues[prefix] = q
  end
  return q
end
-- Each parent's children, as the fields of its job hash ("\t<queue>\t<id>" = '',
-- pending): written with the parent's own HSET, one write for it all.
local kids_of = {}
for i = 0, n - 1 do
  local b = 2 + i * W
  local parent = tonumber(ARGV[b + 6])
  if parent > 0 then
    local k = kids_of[parent]
    if not k then
      k = {}
      kids_of[parent] = k
    end
    k[#k + 1], k[#k + 2] = '\t' .. queue_of(ARGV[b]) .. '\t' .. ARGV[b + 1], ''
  end
end
local grouped = {}
for i = 0, n - 1 do
  local b = 2 + i * W
  local prefix, id, spec = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local delay, pri, keep = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), ARGV[b + 5]
  local parent, kids = tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  local q = queue(prefix)
  local state = kids > 0 and 'waiting-children' or (delay > 0 and 'delayed' or 'waiting')
  local f = { prefix .. 'job:' .. id, 'spec', spec, 'state', state, 'ts', now, 'keep', keep }
  if pri > 0 then f[#f + 1], f[#f + 2] = 'pri', pri end
  if kids > 0 then
    f[#f + 1], f[#f + 2] = 'deps', kids
    for _, v in ipairs(kids_of[i + 1] or {}) do f[#f + 1] = v end
  elseif delay > 0 then
    f[#f + 1], f[#f + 2] = 'ready', now + delay
  end
  redis.call('HSET', unpack(f))
  local group = group_of(keep)
  if group and not grouped[prefix] then
    grouped[prefix] = true
    redis.call('HSETNX', prefix .. 'meta', 'groups', '0:0:0')
  end
  if kids > 0 then
    redis.call('ZADD', prefix .. 'waiting-children', now, id)
  elseif delay > 0 then
    redis.call('ZADD', prefix .. 'delayed', now + delay, id)
  elseif group or pri > 0 then
    push_job(prefix, prefix .. 'wait', prefix .. 'prioritized', prefix .. 'meta', id, pri, false, group)
    q.wake = true
  else
    q.ready[#q.ready + 1] = id
  end
  if q.events then
    local e = { prefix .. 'events', 'MAXLEN', '~', q.events, '*', 'event', 'added', 'id', id,
      'name', spec_name(spec) }
    if parent > 0 then
      local pb = 2 + (parent - 1) * W
      e[#e + 1], e[#e + 2] = 'parent', queue_of(ARGV[pb]) .. '/' .. ARGV[pb + 1]
    end
    if kids == 0 and delay > 0 then e[#e + 1], e[#e + 2] = 'delayed', now + delay end
    redis.call('XADD', unpack(e))
  end
end
-- Ready jobs without a group or priority: one LPUSH per queue, in the order given.
for prefix, q in pairs(queues) do
  for i = 1, #q.ready, 1000 do
    redis.call('LPUSH', prefix .. 'wait', unpack(q.ready, i, math.min(i + 999, #q.ready)))
  end
  if q.wake or #q.ready > 0 then wake(prefix .. 'wake') end
end
return { 1 }
