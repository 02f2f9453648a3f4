-- drop_member: removes a member of _sessions or SESSIONS that names no session, unless a
-- session with that token and id exists now. KEYS[1] the hash the member names, KEYS[2]
-- the sorted set; ARGV[1] the member, ARGV[2] its id. Returns 1 when it was removed.
local id = false
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  id = redis.call('HGET', KEYS[1], 'id')
end
if id == ARGV[2] then
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[1])
