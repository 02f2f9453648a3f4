-- create, as a script (the sharded layout on a cluster: a script is retried by the cluster
-- client on TRYAGAIN/ASK while its slot migrates, where a MULTI/EXEC would abort).
-- KEYS[1] hash, KEYS[2] _sessions, KEYS[3] _users, KEYS[4] SESSIONS, KEYS[5] us:{id}
-- ARGV[1] now, ARGV[2] app, ARGV[3] token, ARGV[4] id, ARGV[5] ttl, ARGV[6] '1' for a key
-- TTL, ARGV[7..] the hash's fields and values (in Commands::new_fields' order: ARGV[14] is
-- the ip). With events on, KEYS[6] the app's event stream.
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[3] .. ':' .. ARGV[4])
redis.call('ZADD', KEYS[3], now, ARGV[4])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4])
redis.call('SADD', KEYS[5], ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[6] == '1' then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]) + KEY_TTL_MARGIN)
end
--E emit(KEYS[6], 'created', '', ARGV[4], ARGV[3], ARGV[14], ARGV[5])
return 1
