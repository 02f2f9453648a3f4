-- killall, one bounded batch: removes up to ARGV[5] sessions of an app.
-- KEYS[1] _sessions, KEYS[2] _users, KEYS[3] SESSIONS, KEYS[4..] the hashes and us: sets of
-- the members given (cluster layout: every key declared; with events on, the app's event
-- stream last).
-- ARGV[1] app, ARGV[2] hash prefix, ARGV[3] us: prefix, ARGV[4] channel spec, ARGV[5]
-- batch size, ARGV[6] 'read' (the batch is read here: Node layout on one Redis) or 'given'
-- (the caller read it first: ARGV[7..] the members; those gone meanwhile are skipped).
-- Returns {sessions removed, sessions left}.
local members
local total = redis.call('ZCARD', KEYS[1])
if ARGV[6] == 'read' then
  members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
else
  members = {}
  for i = 7, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      members[#members + 1] = ARGV[i]
    end
  end
end
local tokens, ids, junk = {}, {}, {}
for _, m in ipairs(members) do
  local p = string.find(m, ':', 1, true)
  if p then
    tokens[#tokens + 1] = string.sub(m, 1, p - 1)
    ids[#ids + 1] = string.sub(m, p + 1)
  else
    junk[#junk + 1] = m
  end
end
local expiring = {}
local k = {ARGV[2], KEYS[1], ARGV[3], ARGV[1], ARGV[4]}
--E k[6] = 'all'
local _, emptied = kill_sessions(k, tokens, ids, expiring, junk)
if #expiring > 0 then
  redis.call('ZREM', KEYS[3], unpack(expiring))
end
local left = total - #members
if left == 0 then
  redis.call('DEL', KEYS[2])
elseif #emptied > 0 then
  redis.call('ZREM', KEYS[2], unpack(emptied))
end
return {#members, left}
