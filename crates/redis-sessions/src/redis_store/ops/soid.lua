-- soid: the fields of every session of one id.
-- KEYS[1] us:{id}, KEYS[2..] the hashes of the tokens given (cluster layout: every key
-- declared). ARGV[1] hash prefix, ARGV[2] 'read' (the tokens are read here: Node layout on
-- one Redis) or 'given' (the caller read the set first: ARGV[3..] its tokens).
-- Returns {1, rows, tokens} (tokens[i] is rows[i]'s: the library turns it into a device
-- handle), or {0} when the set has a token the caller was not given (a session
-- was created since the caller's read: it reads again).
local tokens = redis.call('SMEMBERS', KEYS[1])
if ARGV[2] ~= 'read' then
  local given = {}
  for i = 3, #ARGV do
    given[ARGV[i]] = true
  end
  for _, t in ipairs(tokens) do
    if not given[t] then
      return {0}
    end
  end
end
local out = {}
for i, t in ipairs(tokens) do
  out[i] = redis.call('HMGET', ARGV[1] .. t, F_ALL)
end
return {1, out, tokens}
