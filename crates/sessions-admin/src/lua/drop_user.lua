-- drop_user: removes an id from _users while it has no us:{id} set (no session).
-- KEYS[1] us:{id}, KEYS[2] _users; ARGV[1] the id. Returns 1 when it was removed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[1])
