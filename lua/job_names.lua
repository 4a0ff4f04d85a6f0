#!lua flags=no-writes
-- job_names.lua: the names of some jobs, for a listing (Queue::summaries), without
-- sending their payloads: a job's name is the head of its field 'spec' (common.lua
-- spec_name; src/job/spec.rs), which also holds the payload.
-- Flags: no-writes (a read; runs on a replica and when Redis is over maxmemory).
-- KEYS: [1..n] job hashes (one queue, so one slot)
-- ARGV: [1] key prefix
-- Returns: one value per key: the job's name; its field 'name' for a job from before
-- 'spec'; the name in its value for a compact job (compact.lua); false (nil) for no
-- job or none of these.
local out = {}
for i, jk in ipairs(KEYS) do
  local spec = redis.call('HGET', jk, 'spec')
  if spec then
    out[i] = spec_name(spec)
  else
    out[i] = redis.call('HGET', jk, 'name')
    if not out[i] then
      local v = redis.call('HGET', ARGV[1] .. 'jobs', string.sub(jk, #ARGV[1] + 5))
      local packed = v and compact_spec(v)
      out[i] = packed and spec_name(packed) or false
    end
  end
end
return out
