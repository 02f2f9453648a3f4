-- sweep, one bounded batch: kills up to ARGV[2] sessions whose time of death has come.
-- KEYS[1] SESSIONS, KEYS[2..] the keys of the members given (cluster layout: every key
-- declared): each app's _sessions and _users (and event stream, with events on), each
-- session's hash and us: set.
-- ARGV[1] now, ARGV[2] batch size, ARGV[3] namespace (or shard) prefix, ARGV[4] channel
-- spec, ARGV[5] 'l' when the expiry index is lazy (the sharded layout: a read does not move
-- a session's member, which stays at an earlier time of death; see touch.lua), else 'e':
-- with 'l' each due member's hash is read, and a session still alive gets its member moved
-- to the second it dies instead of being killed. ARGV[6] 'read' (the batch is read here:
-- Node layout on one Redis) or 'given' (the caller read it first: ARGV[7..] the members;
-- those no longer due are skipped).
-- Members are {app}:{token}:{id}: app has no ':' and the token is 64 characters, so the id
-- is cut by position and may itself contain ':'. Returns how many sessions were killed
-- (or found gone).
local now = tonumber(ARGV[1])
local members
if ARGV[6] == 'read' then
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
else
  members = {}
  for i = 7, #ARGV do
    local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if score and tonumber(score) <= now then
      members[#members + 1] = ARGV[i]
    end
  end
end
local lazy = ARGV[5] == 'l'
local apps, order, expiring, alive = {}, {}, {}, {}
for _, m in ipairs(members) do
  local p = string.find(m, ':', 1, true)
  local dies
  if lazy and p and string.sub(m, p + 65, p + 65) == ':' then
    local v = redis.call('HMGET', ARGV[3] .. string.sub(m, 1, p + 64), FN_LA, FN_TTL)
    local la, ttl = tonumber(v[1]), tonumber(v[2])
    if la and ttl and la + ttl >= now then
      dies = la + ttl + 1
    end
  end
  if dies then
    alive[#alive + 1] = dies
    alive[#alive + 1] = m
  elseif p and string.sub(m, p + 65, p + 65) == ':' then
    local app = string.sub(m, 1, p - 1)
    if not apps[app] then
      apps[app] = {tokens = {}, ids = {}}
      order[#order + 1] = app
    end
    local a = apps[app]
    a.tokens[#a.tokens + 1] = string.sub(m, p + 1, p + 64)
    a.ids[#a.ids + 1] = string.sub(m, p + 66)
  else
    expiring[#expiring + 1] = m
  end
end
for _, app in ipairs(order) do
  local a = apps[app]
  local prefix = ARGV[3] .. app .. ':'
  local k = {prefix, prefix .. '_sessions', prefix .. 'us:', app, ARGV[4]}
  --E k[6] = 'expired'
  local _, emptied = kill_sessions(k, a.tokens, a.ids, expiring)
  if #emptied > 0 then
    redis.call('ZREM', prefix .. '_users', unpack(emptied))
  end
end
if #alive > 0 then
  redis.call('ZADD', KEYS[1], 'XX', unpack(alive))
end
if #expiring > 0 then
  redis.call('ZREM', KEYS[1], unpack(expiring))
end
return #members - #alive / 2
