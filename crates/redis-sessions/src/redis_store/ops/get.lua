-- get: the live session, counted as a read. Returns its fields before the read, or nil.
-- Session-call keys and arguments (lib/README.md); runs between read_live and touch.
local fields = {'r', tonumber(v[F_R]) + 1}
