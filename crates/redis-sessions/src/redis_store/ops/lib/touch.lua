-- touch, a block that ends the script (see read_live.lua for why not a function) and
-- returns `v`: marks a read or write of the live session read by read_live, writing the
-- hash fields `fields` (a flat list: the counter, the data) in the same HSET as what the
-- touch moves. Nothing that already holds `now` is rewritten: idle 0 means `la` is now and
-- the indexes were moved with it; at idle 1 the ZADD of `_sessions` says (CH: 0 changed)
-- whether another call moved them this second, so no read of the index is needed. `la`
-- moves only when idle > 1, as in the Node module; a no_resave session keeps its end
-- (la + ttl) fixed, so its ttl shrinks exactly by the time `la` moves, and its time of
-- death never moves. ARGV[4]: its first character 'l' when the expiry index (`SESSIONS`)
-- is kept lazily (the sharded layout: the sweep moves a member that is due but still
-- alive), 'e' when every touch moves it (the Node layout, whose sweep — Node's too —
-- removes what is due without a look at the hash); a second character 't' when hashes
-- have a key TTL.
local no_resave = v[F_NO_RESAVE] == '1'
if idle > 1 then
  fields[#fields + 1] = FN_LA
  fields[#fields + 1] = ARGV[1]
  if no_resave then
    fields[#fields + 1] = FN_TTL
    fields[#fields + 1] = ttl - idle
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
if idle > 1 and not no_resave and string.byte(ARGV[4], 2) == 116 then
  redis.call('EXPIRE', KEYS[1], ttl + KEY_TTL_MARGIN)
end
if idle == 0 then
  return v
end
local id = v[F_ID]
local member = ARGV[3] .. ':' .. id
if idle > 1 then
  redis.call('ZADD', KEYS[2], ARGV[1], member)
elseif redis.call('ZADD', KEYS[2], 'CH', ARGV[1], member) == 0 then
  return v
end
redis.call('ZADD', KEYS[3], ARGV[1], id)
if not no_resave and string.byte(ARGV[4], 1) == 101 then
  redis.call('ZADD', KEYS[4], now + ttl, ARGV[2] .. ':' .. member)
end
return v
