-- drop_user_token: removes a token from us:{id} unless its session of that id exists now,
-- and the id from _users when the set is left empty. KEYS[1] the hash, KEYS[2] us:{id},
-- KEYS[3] _users; ARGV[1] the token, ARGV[2] the id. Returns what changed.
local id = false
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  id = redis.call('HGET', KEYS[1], 'id')
end
if id == ARGV[2] then
  return {}
end
local changes = {}
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  changes[1] = 'removed_from_user_set'
end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('ZREM', KEYS[3], ARGV[2]) == 1 then
  changes[#changes + 1] = 'removed_from_users'
end
return changes
