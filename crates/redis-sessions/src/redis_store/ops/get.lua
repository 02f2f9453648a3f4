--@read_live: defines now, v (the fields), ttl and idle; ends the script (nil) for a dead session
-- get: the live session, counted as a read. Returns its fields before the read, or nil.
-- Session-call keys and arguments (lib/README.md); runs between read_live and touch.
local fields = {FN_R, tonumber(v[F_R]) + 1}
--@touch: writes `fields` and what the touch moves; ends the script, returning v
