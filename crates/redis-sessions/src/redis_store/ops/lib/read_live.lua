-- read_live, a block (not a function: a script's top runs on every call, and a function
-- there costs a closure each time): reads the session of KEYS[1] and ends the script with
-- nil when it is absent or dead. Leaves `now` (ARGV[1] as a number), `v` (its fields in
-- session::FIELDS order), `ttl` and `idle` (seconds since `la`).
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], F_ALL)
if not v[F_ID] then
  return false
end
local ttl = tonumber(v[F_TTL])
local idle = now - tonumber(v[F_LA])
if ttl < idle then
  return false
end
