-- set: merges data into the live session, counted as a write. Returns its new fields, or nil.
local now = tonumber(ARGV[1])
local v, idle = read_live(now)
if not v then
  return false
end
local d = merge(v[5], 7)
v[3] = tostring(tonumber(v[3]) + 1)
local fields = {'w', v[3]}
if d then
  fields[3] = 'd'
  fields[4] = d
elseif v[5] then
  redis.call('HDEL', KEYS[1], 'd')
end
v[5] = d or false
touch(v, idle, now, fields)
announce(ARGV[5], ARGV[2] .. ':' .. ARGV[3])
return v
