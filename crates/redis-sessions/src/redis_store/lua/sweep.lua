-- sweep, one bounded batch: kills up to ARGV[2] sessions whose time of death has come.
-- KEYS[1] SESSIONS; ARGV[1] now, ARGV[2] batch size, ARGV[3] namespace prefix, ARGV[4] channel
-- Members are {app}:{token}:{id}: app has no ':' and the token is 64 characters, so the id
-- is cut by position and may itself contain ':'.
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  local p = string.find(m, ':', 1, true)
  if p and string.sub(m, p + 65, p + 65) == ':' then
    local app = string.sub(m, 1, p - 1)
    local token = string.sub(m, p + 1, p + 64)
    local id = string.sub(m, p + 66)
    local a = ARGV[3] .. app .. ':'
    kill_session(a .. token, a .. '_sessions', a .. '_users', KEYS[1], a .. 'us:', app, token, id, ARGV[4])
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return #members
