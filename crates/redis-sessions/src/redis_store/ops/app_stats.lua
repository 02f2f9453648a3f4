-- app_stats: an app's counts in one shard, read from its indexes only (O(log n) each).
-- KEYS[1] the app's _sessions (score: last activity), KEYS[2] its _users (same).
-- ARGV: the start of each window (Unix seconds). Returns {sessions, users, then sessions
-- active per window, then users active per window}.
local out = {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[1], ARGV[i], '+inf')
end
for i = 1, #ARGV do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[2], ARGV[i], '+inf')
end
return out
