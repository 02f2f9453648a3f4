-- killall, one bounded batch: removes up to ARGV[1] sessions of an app.
-- KEYS[1] _sessions, KEYS[2] _users, KEYS[3] SESSIONS
-- ARGV[1] batch size, ARGV[2] app, ARGV[3] hash prefix, ARGV[4] us:{id} prefix, ARGV[5] channel
-- Returns {sessions removed, sessions left}.
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local hashes, expiring, ids = {}, {}, {}
for _, m in ipairs(members) do
  local p = string.find(m, ':', 1, true)
  if p then
    local token, id = string.sub(m, 1, p - 1), string.sub(m, p + 1)
    hashes[#hashes + 1] = ARGV[3] .. token
    expiring[#expiring + 1] = ARGV[2] .. ':' .. m
    redis.call('SREM', ARGV[4] .. id, token)
    ids[id] = true
    redis.call('PUBLISH', ARGV[5], ARGV[2] .. ':' .. token)
  end
end
call_chunked('DEL', nil, hashes)
call_chunked('ZREM', KEYS[1], members)
call_chunked('ZREM', KEYS[3], expiring)
for id in pairs(ids) do
  if redis.call('EXISTS', ARGV[4] .. id) == 0 then
    redis.call('ZREM', KEYS[2], id)
  end
end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[2])
end
return {#members, left}
