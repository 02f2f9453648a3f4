--@read_live: defines now, v (the fields), ttl and idle; ends the script (nil) for a dead session
-- set: merges data into the live session, counted as a write. Returns its new fields, or nil.
-- Session-call keys and arguments (lib/README.md), ARGV[5] the channel spec, ARGV[6..] the
-- data's key and value pairs; runs between read_live and touch.
local d = merge(v[F_D], 6)
v[F_W] = tostring(tonumber(v[F_W]) + 1)
local fields = {FN_W, v[F_W]}
if d then
  fields[3] = FN_D
  fields[4] = d
elseif v[F_D] then
  redis.call('HDEL', KEYS[1], FN_D)
end
v[F_D] = d or false
-- Announced before the touch, which ends the script: a subscriber hears of it only once
-- the script has run whole.
announce(ARGV[5], ARGV[2] .. ':' .. ARGV[3])
--@touch: writes `fields` and what the touch moves; ends the script, returning v
