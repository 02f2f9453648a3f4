-- Helpers shared by every script (prepended to each one when it is loaded).
-- Conventions of the scripts that name one session:
--   KEYS[1] the session hash, KEYS[2] the app's _sessions, KEYS[3] the app's _users,
--   KEYS[4] the namespace's SESSIONS;
--   ARGV[1] now, ARGV[2] app, ARGV[3] token, ARGV[4] prefix of the us:{id} sets,
--   ARGV[5] the cache channel, ARGV[6] '1' to give hashes a key TTL, ARGV[7..] data pairs.

local FIELDS = {'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave'}

-- Runs a variadic command over many arguments, at most 1000 at a time (Lua's stack is small).
local function call_chunked(cmd, key, items)
  local n = 0
  for i = 1, #items, 1000 do
    local last = math.min(i + 999, #items)
    if key then
      n = n + redis.call(cmd, key, unpack(items, i, last))
    else
      n = n + redis.call(cmd, unpack(items, i, last))
    end
  end
  return n
end

-- Removes one session and its index entries; the id leaves _users with its last session.
local function kill_session(hash, sessions, users, expiries, us_prefix, app, token, id, channel)
  local n = redis.call('DEL', hash)
  redis.call('ZREM', sessions, token .. ':' .. id)
  redis.call('ZREM', expiries, app .. ':' .. token .. ':' .. id)
  local us = us_prefix .. id
  redis.call('SREM', us, token)
  if redis.call('EXISTS', us) == 0 then
    redis.call('ZREM', users, id)
  end
  redis.call('PUBLISH', channel, app .. ':' .. token)
  return n
end

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

-- Reads the live session of KEYS[1]: its fields and idle time, or nil when absent or dead.
local function read_live(now)
  local v = redis.call('HMGET', KEYS[1], unpack(FIELDS))
  if not v[1] then
    return nil
  end
  local idle = now - tonumber(v[6])
  if tonumber(v[4]) < idle then
    return nil
  end
  return v, idle
end

-- Index of the closing quote of the JSON string that opens at i.
local function string_end(s, i)
  local j = i + 1
  while true do
    local c = string.find(s, '["\\]', j)
    if not c then
      error('corrupt d: unterminated string')
    end
    if string.byte(s, c) == 34 then
      return c
    end
    j = c + 2
  end
end

-- Reads a flat JSON object of scalars into ordered keys and raw value texts. Values stay
-- text: numbers are never converted, so no precision is lost and Node's bytes are kept.
local function parse_flat(s, keys, vals)
  local i = string.find(s, '{', 1, true)
  if not i then
    error('corrupt d: not an object')
  end
  i = i + 1
  while true do
    i = string.find(s, '[^%s,]', i)
    if not i then
      error('corrupt d: not closed')
    end
    if string.byte(s, i) == 125 then
      return
    end
    local ke = string_end(s, i)
    local k = string.sub(s, i, ke)
    i = string.find(s, '[^%s:]', ke + 1)
    local ve
    if string.byte(s, i) == 34 then
      ve = string_end(s, i)
    else
      ve = string.find(s, '[%s,}]', i) - 1
    end
    if vals[k] == nil then
      keys[#keys + 1] = k
    end
    vals[k] = string.sub(s, i, ve)
    i = ve + 1
  end
end

-- Merges ARGV[from..] (key, value JSON texts; value `null` deletes) into the stored object.
-- Existing keys keep their place and new ones are appended, as lodash's extend does.
-- Returns the new JSON text, or nil when no key is left.
local function merge(stored, from)
  local keys, vals = {}, {}
  if stored then
    parse_flat(stored, keys, vals)
  end
  for i = from, #ARGV, 2 do
    local k, val = ARGV[i], ARGV[i + 1]
    if vals[k] == nil then
      keys[#keys + 1] = k
    end
    if val == 'null' then
      vals[k] = false
    else
      vals[k] = val
    end
  end
  local out = {}
  for _, k in ipairs(keys) do
    local val = vals[k]
    if val then
      out[#out + 1] = k .. ':' .. val
    end
  end
  if #out == 0 then
    return nil
  end
  return '{' .. table.concat(out, ',') .. '}'
end
