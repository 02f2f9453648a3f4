-- mend_session: mends one session's index entries, or removes the session when it is
-- corrupt or long past its end. Everything is read again here first, so a session a
-- concurrent writer changed or ended since the check is judged as it is now.
-- KEYS[1] the hash, KEYS[2] the app's _sessions, KEYS[3] _users, KEYS[4] SESSIONS;
-- ARGV[1] now, ARGV[2] grace (s), ARGV[3] app, ARGV[4] token, ARGV[5] the prefix of the
-- us:{id} sets, ARGV[6] the cache channel with its command first ('P' PUBLISH, 'S'
-- SPUBLISH), ARGV[7] '1' when the check found `d` corrupt, ARGV[8] that `d` text (removed only while it is still the same). Returns what changed.
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return {}
end
local v = redis.call('HMGET', KEYS[1], 'id', 'la', 'ttl', 'd')
local id, la, ttl = v[1], tonumber(v[2]), tonumber(v[3])
local app, token = ARGV[3], ARGV[4]
local why
if not id or not la or not ttl then
  why = 'removed_corrupt_hash'
elseif ARGV[7] == '1' and v[4] == ARGV[8] then
  why = 'removed_corrupt_data'
elseif la + ttl < tonumber(ARGV[1]) - tonumber(ARGV[2]) then
  why = 'removed_expired'
end
if why then
  -- As kill does: the hash, its three index entries, the id when it has no session left.
  redis.call('DEL', KEYS[1])
  if id then
    redis.call('ZREM', KEYS[2], token .. ':' .. id)
    redis.call('ZREM', KEYS[4], app .. ':' .. token .. ':' .. id)
    local us = ARGV[5] .. id
    redis.call('SREM', us, token)
    if redis.call('EXISTS', us) == 0 then
      redis.call('ZREM', KEYS[3], id)
    end
  end
  local command = string.sub(ARGV[6], 1, 1) == 'S' and 'SPUBLISH' or 'PUBLISH'
  redis.call(command, string.sub(ARGV[6], 2), app .. ':' .. token)
  return {why}
end
local changes = {}
local member = token .. ':' .. id
if not redis.call('ZSCORE', KEYS[2], member) then
  redis.call('ZADD', KEYS[2], la, member)
  changes[#changes + 1] = 'added_to_sessions'
end
if not redis.call('ZSCORE', KEYS[3], id) then
  redis.call('ZADD', KEYS[3], la, id)
  changes[#changes + 1] = 'added_to_users'
end
if redis.call('SADD', ARGV[5] .. id, token) == 1 then
  changes[#changes + 1] = 'added_to_user_set'
end
-- A touch may leave SESSIONS one second past la + ttl (it moves the indexes at idle 1
-- without moving la); anything else is wrong.
local dies = la + ttl
local score = redis.call('ZSCORE', KEYS[4], app .. ':' .. member)
if not score then
  redis.call('ZADD', KEYS[4], dies, app .. ':' .. member)
  changes[#changes + 1] = 'added_to_expiries'
elseif tonumber(score) < dies or tonumber(score) > dies + 1 then
  redis.call('ZADD', KEYS[4], dies, app .. ':' .. member)
  changes[#changes + 1] = 'fixed_expiry'
end
return changes
