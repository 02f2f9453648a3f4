-- check_members (read-only): whether each index member of a batch names a session.
-- ARGV[1] the namespace prefix, ARGV[2] the index: 's' an app's _sessions (members
-- {token}:{id}), 'e' SESSIONS ({app}:{token}:{id}), 'u' a us:{id} set ({token}), 'r' an
-- app's _users ({id}); ARGV[3] the app ('s', 'u', 'r'), ARGV[4] the id ('u'), ARGV[5..]
-- the members. A token is 64 characters and an app holds no ':', so members are cut by
-- position (an id may contain ':'). Returns 1 (names a session) or 0 per member.
local prefix, index, app, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- The id of the session hash at `key`, false when there is none.
local function id_of(key)
  if redis.call('TYPE', key).ok ~= 'hash' then
    return false
  end
  return redis.call('HGET', key, 'id')
end
local sub = string.sub
local out = {}
for i = 5, #ARGV do
  local m = ARGV[i]
  local ok = false
  if index == 's' then
    ok = sub(m, 65, 65) == ':' and id_of(prefix .. app .. ':' .. sub(m, 1, 64)) == sub(m, 66)
  elseif index == 'e' then
    local p = string.find(m, ':', 1, true)
    ok = p ~= nil and sub(m, p + 65, p + 65) == ':'
      and id_of(prefix .. sub(m, 1, p - 1) .. ':' .. sub(m, p + 1, p + 64)) == sub(m, p + 66)
  elseif index == 'u' then
    ok = id_of(prefix .. app .. ':' .. m) == id
  else
    ok = redis.call('EXISTS', prefix .. app .. ':us:' .. m) == 1
  end
  out[#out + 1] = ok and 1 or 0
end
return out
