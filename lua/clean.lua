#!lua flags=allow-oom
-- clean.lua: delete finished jobs older than an age from one finished set.
-- Flags: allow-oom. It only deletes, so it runs when Redis is over maxmemory: that is
-- when an operator needs it most.
-- KEYS: [1] the finished set (completed, failed or cancelled)
-- ARGV: [1] key prefix  [2] age ms (0 = all)  [3] max jobs this call
-- Returns: the number of jobs deleted.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]),
  'LIMIT', 0, tonumber(ARGV[3]))
return drop_members(KEYS[1], ARGV[1], ids)
