-- set: merges data into the live session, counted as a write. Returns its new fields, or nil.
-- Session-call keys and arguments (lib/README.md), ARGV[5] the channel spec, ARGV[6..] the
-- data's key and value pairs; runs between read_live and touch.
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
-- Announced before the touch, which ends the script: a subscriber hears of it only once
-- the script has run whole.
announce(ARGV[5], ARGV[2] .. ':' .. ARGV[3])
