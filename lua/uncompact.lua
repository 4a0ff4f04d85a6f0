#!lua
-- uncompact.lua: shut the compact-job gate and expand one page of the queue's compact
-- jobs into hashes of their own (compact.lua), for a rollback to a baton from before
-- compact jobs, whose workers would drop them (`baton uncompact`, docs/leases.md).
-- Flags: none (refused whole when over maxmemory: expanding writes).
-- KEYS: [1] meta  [2] jobs
-- ARGV: [1] key prefix  [2] HSCAN cursor  [3] fields to look at (HSCAN COUNT)
-- Returns: { next cursor ('0': done), jobs expanded }.
-- Sets meta 'compact' to 'off' first, so no add makes a compact job meanwhile or after:
-- heartbeats leave 'off' alone (compact_gate) until `baton uncompact --reopen`.
redis.call('HSET', KEYS[1], 'compact', 'off')
local page = redis.call('HSCAN', KEYS[2], ARGV[2], 'COUNT', ARGV[3])
local fields, n = page[2], 0
for i = 1, #fields, 2 do
  -- Field '' is the hash's padding, not a job.
  if fields[i] ~= '' then
    expand(ARGV[1], fields[i], fields[i + 1])
    n = n + 1
  end
end
return { page[1], n }
