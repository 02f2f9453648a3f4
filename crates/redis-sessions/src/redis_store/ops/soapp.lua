-- soapp: the fields of every session active since ARGV[1], most recent first.
-- KEYS[1] _sessions, KEYS[2..] the hashes of the members given (cluster layout: every key
-- declared). ARGV[1] since, ARGV[2] hash prefix, ARGV[3] 'read' (the members are read
-- here: Node layout on one Redis) or 'given' (the caller read them first, most recent
-- first: ARGV[4..]; a session killed since is left out by the caller, its fields are nil).
local members
if ARGV[3] == 'read' then
  members = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1])
else
  members = {}
  for i = 4, #ARGV do
    members[#members + 1] = ARGV[i]
  end
end
local out = {}
for i, m in ipairs(members) do
  local p = string.find(m, ':', 1, true) or (#m + 1)
  out[i] = redis.call('HMGET', ARGV[2] .. string.sub(m, 1, p - 1), F_ALL)
end
return out
