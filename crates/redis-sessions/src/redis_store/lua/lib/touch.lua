-- Marks a read or write of a live session (v: its fields as HMGET returned them) at
-- `now` (ARGV[1] as a number), writing the hash fields `fields` (a flat list: the counter,
-- the data) in the same HSET as what the touch moves. Nothing that already holds `now` is
-- rewritten: idle 0 means `la` is now and the index scores were written with it; a second
-- read within the same second finds its `_sessions` score at now. `la` moves only when
-- idle > 1, as in the Node module; a no_resave session keeps its end (la + ttl) fixed, so
-- its ttl shrinks exactly by the time `la` moves, and its time of death never moves.
local function touch(v, idle, now, fields)
  local id, ttl = v[1], tonumber(v[4])
  local no_resave = v[8] == '1'
  if idle > 1 then
    fields[#fields + 1] = 'la'
    fields[#fields + 1] = ARGV[1]
    if no_resave then
      fields[#fields + 1] = 'ttl'
      fields[#fields + 1] = ttl - idle
    end
  end
  if #fields > 0 then
    redis.call('HSET', KEYS[1], unpack(fields))
  end
  if idle > 1 and ARGV[6] == '1' and not no_resave then
    redis.call('EXPIRE', KEYS[1], ttl + 1)
  end
  if idle == 0 then
    return
  end
  local member = ARGV[3] .. ':' .. id
  if idle == 1 and tonumber(redis.call('ZSCORE', KEYS[2], member)) == now then
    return
  end
  redis.call('ZADD', KEYS[2], ARGV[1], member)
  redis.call('ZADD', KEYS[3], ARGV[1], id)
  if not no_resave then
    redis.call('ZADD', KEYS[4], now + ttl, ARGV[2] .. ':' .. ARGV[3] .. ':' .. id)
  end
end
