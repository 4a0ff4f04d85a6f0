#!lua
-- reencrypt.lua: rewrite encrypted job fields under another key (`baton reencrypt`),
-- each only if it still holds the value the caller read (compare-and-set).
-- Flags: none (refused whole when over maxmemory; a rewrite is never urgent).
-- The values are opaque here: the caller decrypted and encrypted them; no script needs
-- to understand the envelope.
-- KEYS: [1..n] job hashes, or the queue's 'jobs' hash of compact jobs (compact.lua:
--       the field is the job's id, the value its whole value); one queue, one slot
-- ARGV: per key, in order: count c, then c groups of 4: field, value read, new value,
--       how many sealed values the field holds (2 for a kept compact completion's
--       payload and result, else 1)
-- Returns: { rewritten, changed }: values rewritten, and values left alone because the
--          field changed meanwhile (the job finished, was retried or removed); a later
--          run picks those up.
local rewritten, changed = 0, 0
local a = 1
for i = 1, #KEYS do
  local c = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, c do
    local field, old, new, w = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
    a = a + 4
    if redis.call('HGET', KEYS[i], field) == old then
      redis.call('HSET', KEYS[i], field, new)
      rewritten = rewritten + w
    else
      changed = changed + w
    end
  end
end
return { rewritten, changed }
