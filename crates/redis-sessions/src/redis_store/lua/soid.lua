-- soid: the fields of every session of one id. KEYS[1] us:{id}; ARGV[1] hash prefix.
local tokens = redis.call('SMEMBERS', KEYS[1])
local out = {}
for i, t in ipairs(tokens) do
  out[i] = redis.call('HMGET', ARGV[1] .. t, 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')
end
return out
