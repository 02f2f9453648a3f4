-- Removes one session and its index entries; the id leaves _users with its last session.
local function kill_session(hash, sessions, users, expiries, us_prefix, app, token, id, channel)
  local n = redis.call('DEL', hash)
  redis.call('ZREM', sessions, token .. ':' .. id)
  redis.call('ZREM', expiries, app .. ':' .. token .. ':' .. id)
  local us = us_prefix .. id
  redis.call('SREM', us, token)
  if redis.call('EXISTS', us) == 0 then
    redis.call('ZREM', users, id)
  end
  redis.call('PUBLISH', channel, app .. ':' .. token)
  return n
end
