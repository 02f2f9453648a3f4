-- killsoid: every session of one id ("log out everywhere"). Returns how many hashes went.
-- KEYS[1] us:{id}, KEYS[2] _sessions, KEYS[3] _users, KEYS[4] SESSIONS
-- ARGV[1] app, ARGV[2] id, ARGV[3] prefix of the app's session hashes, ARGV[4] cache channel
local tokens = redis.call('SMEMBERS', KEYS[1])
if #tokens == 0 then
  return 0
end
local hashes, members, expiring = {}, {}, {}
for i, t in ipairs(tokens) do
  hashes[i] = ARGV[3] .. t
  members[i] = t .. ':' .. ARGV[2]
  expiring[i] = ARGV[1] .. ':' .. t .. ':' .. ARGV[2]
  redis.call('PUBLISH', ARGV[4], ARGV[1] .. ':' .. t)
end
local n = call_chunked('DEL', nil, hashes)
call_chunked('ZREM', KEYS[2], members)
call_chunked('ZREM', KEYS[4], expiring)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
return n
