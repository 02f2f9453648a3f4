-- set: merges data into the live session, counted as a write. Returns its new fields, or nil.
-- Session-call keys and arguments (lib/README.md), ARGV[5] the channel spec, ARGV[6..] the
-- data's key and value pairs.
local now = tonumber(ARGV[1])
local v, idle = read_live(now)
if not v then
  return false
end
local d = merge(v[F_D], 6)
v[F_W] = tostring(tonumber(v[F_W]) + 1)
local fields = {'w', v[F_W]}
if d then
  fields[3] = 'd'
  fields[4] = d
elseif v[F_D] then
  redis.call('HDEL', KEYS[1], 'd')
end
v[F_D] = d or false
touch(v, idle, now, fields)
announce(ARGV[5], ARGV[2] .. ':' .. ARGV[3])
return v
