-- killsoid: sessions of one id ("log out everywhere"), or all but one ("every other device").
-- KEYS[1] us:{id}, KEYS[2] _sessions, KEYS[3] _users, KEYS[4] SESSIONS, KEYS[5..] the
-- hashes of the tokens given (cluster layout: every key declared; with events on, the app's
-- event stream last).
-- ARGV[1] app, ARGV[2] id, ARGV[3] hash prefix, ARGV[4] channel spec, ARGV[5] 'read' (the
-- tokens are read here: Node layout on one Redis) or 'whole'/'part' (the caller read the set
-- first and gives all / the first part of its tokens), ARGV[6] the token of a session to
-- keep ('' for none), ARGV[7..] the tokens given; with 'read', ARGV[7] the most tokens one
-- call kills (bounds the script's time).
-- Returns {hashes deleted, tokens left to kill}, or {-1, 0} without changing anything when
-- the caller said 'whole' and the set has a token it was not given (a session was created
-- since the caller's read: it reads again).
local keep = ARGV[6]
local current = {}
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if t ~= keep then
    current[#current + 1] = t
  end
end
local tokens = current
if ARGV[5] == 'read' then
  local most = tonumber(ARGV[7])
  if #current > most then
    tokens = {}
    for i = 1, most do
      tokens[i] = current[i]
    end
  end
else
  local given = {}
  for i = 7, #ARGV do
    given[ARGV[i]] = true
  end
  tokens = {}
  for _, t in ipairs(current) do
    if given[t] then
      tokens[#tokens + 1] = t
    elseif ARGV[5] == 'whole' then
      return {-1, 0}
    end
  end
end
if #tokens == 0 then
  return {0, #current}
end
local ids = {}
for i = 1, #tokens do
  ids[i] = ARGV[2]
end
local expiring = {}
local k = {ARGV[3], KEYS[2], string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[2]), ARGV[1], ARGV[4]}
--E k[6] = 'signedOutElsewhere'
local n, emptied = kill_sessions(k, tokens, ids, expiring)
redis.call('ZREM', KEYS[4], unpack(expiring))
if #emptied > 0 then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return {n, #current - #tokens}
