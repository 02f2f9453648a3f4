-- soapp: the fields of every session active since ARGV[1], most recent first.
-- KEYS[1] _sessions; ARGV[1] since, ARGV[2] hash prefix.
local members = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1])
local out = {}
for i, m in ipairs(members) do
  local p = string.find(m, ':', 1, true) or (#m + 1)
  out[i] = redis.call('HMGET', ARGV[2] .. string.sub(m, 1, p - 1), 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')
end
return out
