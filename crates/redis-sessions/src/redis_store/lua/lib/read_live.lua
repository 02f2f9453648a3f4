-- Reads the live session of KEYS[1]: its fields and idle time, or nil when absent or dead.
local function read_live(now)
  local v = redis.call('HMGET', KEYS[1], 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')
  if not v[1] then
    return nil
  end
  local idle = now - tonumber(v[6])
  if tonumber(v[4]) < idle then
    return nil
  end
  return v, idle
end
