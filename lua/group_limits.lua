#!lua
-- group_limits.lua: set a queue's per-group limits and put back in line every group that
-- has ready jobs, so a raised concurrency (or a rate removed) starts them at once.
-- Flags: none (refused whole when over maxmemory).
-- KEYS: [1] meta  [2] gactive  [3] wake
-- ARGV: [1] key prefix  [2] the limits, "concurrency:rate_n:rate_ms" (0 = none)
-- A group at its concurrency is in neither gready nor glimited (see common.lua on
-- groups): only a lease of it ending put it back in line, so raising the cap left its
-- jobs waiting for that. Every group with leases (gactive) and ready jobs goes back in
-- gready now; one still at its cap is taken out again by the claim that meets it.
-- Groups held back in glimited stay there until their time (their window or hold).
-- Returns: how many groups were put back in line.
local prefix = ARGV[1]
redis.call('HSET', KEYS[1], 'groups', ARGV[2])
local n = 0
local active = redis.call('HKEYS', KEYS[2])
for _, group in ipairs(active) do
  if redis.call('LLEN', prefix .. 'g:' .. group .. ':wait') > 0 then
    group_ready(prefix, KEYS[1], group)
    n = n + 1
  end
end
wake(KEYS[3])
return n
