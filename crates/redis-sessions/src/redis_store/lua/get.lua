-- get: the live session, counted as a read. Returns its fields before the read, or nil.
-- Session-call keys and arguments (lib/README.md).
local now = tonumber(ARGV[1])
local v, idle = read_live(now)
if not v then
  return false
end
touch(v, idle, now, {'r', tonumber(v[F_R]) + 1})
return v
