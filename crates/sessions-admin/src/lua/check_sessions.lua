-- check_sessions (read-only): what the check compares for a batch of one app's session
-- hashes. KEYS the hashes; ARGV[1] the namespace prefix, ARGV[2] the app, ARGV[3..] their
-- tokens in KEYS order. Per key: {type, id, la, ttl, d, in _sessions, in _users,
-- in us:{id}, SESSIONS score} ('1'/'0' for the memberships; nil for what is absent).
local prefix, app = ARGV[1], ARGV[2]
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key).ok
  if t ~= 'hash' then
    out[i] = {t}
  else
    local v = redis.call('HMGET', key, 'id', 'la', 'ttl', 'd')
    local id = v[1]
    if id then
      local token = ARGV[i + 2]
      local s = redis.call('ZSCORE', prefix .. app .. ':_sessions', token .. ':' .. id)
      local u = redis.call('ZSCORE', prefix .. app .. ':_users', id)
      local m = redis.call('SISMEMBER', prefix .. app .. ':us:' .. id, token)
      local e = redis.call('ZSCORE', prefix .. 'SESSIONS', app .. ':' .. token .. ':' .. id)
      out[i] = {t, id, v[2], v[3], v[4], s and '1' or '0', u and '1' or '0', tostring(m), e}
    else
      out[i] = {t, false, v[2], v[3], v[4]}
    end
  end
end
return out
