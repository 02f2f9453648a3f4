-- Reads the live session of KEYS[1]: its fields and idle time, or nil when absent or dead.
local function read_live(now)
  local v = redis.call('HMGET', KEYS[1], F_ALL)
  if not v[F_ID] then
    return nil
  end
  local idle = now - tonumber(v[F_LA])
  if tonumber(v[F_TTL]) < idle then
    return nil
  end
  return v, idle
end
