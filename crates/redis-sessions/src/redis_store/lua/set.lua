-- set: merges data into the live session, counted as a write. Returns its new fields, or nil.
local now = tonumber(ARGV[1])
local v, idle = read_live(now)
if not v then
  return false
end
local d = merge(v[5], 7)
if d then
  redis.call('HSET', KEYS[1], 'd', d)
else
  redis.call('HDEL', KEYS[1], 'd')
end
v[5] = d or false
v[3] = tostring(redis.call('HINCRBY', KEYS[1], 'w', 1))
touch(v, idle, now)
redis.call('PUBLISH', ARGV[5], ARGV[2] .. ':' .. ARGV[3])
return v
