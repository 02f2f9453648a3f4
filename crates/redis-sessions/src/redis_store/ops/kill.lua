-- kill: removes the session whether live or dead (tidying); 1 when it was live. No read is counted.
-- Session-call keys and arguments (lib/README.md), ARGV[5] the channel spec, ARGV[6] the
-- prefix of the us:{id} sets; KEYS[5] us:{id} when the caller read the id first (cluster
-- layout: every key declared, then KEYS[6] the app's event stream when events are on),
-- else the id's set is named here (Node layout on one Redis: one round trip). With events
-- on, ARGV[7] the reason (`killed`, or `device` for kill_device). Returns -1 when KEYS[5]
-- is not the hash's id's set.
local v = redis.call('HMGET', KEYS[1], FN_ID, FN_TTL, FN_LA)
if not v[1] then
  return 0
end
if KEYS[5] and KEYS[5] ~= ARGV[6] .. v[1] then
  return -1
end
local live = tonumber(v[2]) >= tonumber(ARGV[1]) - tonumber(v[3])
local expiring = {}
local k = {string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[3]), KEYS[2], ARGV[6], ARGV[2], ARGV[5]}
--E k[6] = ARGV[7]
local _, emptied = kill_sessions(k, {ARGV[3]}, {v[1]}, expiring)
redis.call('ZREM', KEYS[4], expiring[1])
if #emptied > 0 then
  redis.call('ZREM', KEYS[3], v[1])
end
if live then
  return 1
end
return 0
