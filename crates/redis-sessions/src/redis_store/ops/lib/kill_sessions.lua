-- Kills sessions of one app: `tokens` and `ids` are parallel lists (an id may repeat).
-- Every read comes first, then each key is written at most once and never touched again:
-- a write may empty (delete) a key, and while its slot migrates Redis refuses any touch of
-- a key it does not hold, which would stop the script half way with the first writes done.
-- k: {hash prefix, _sessions, us: prefix, app, channel spec}, and with events on k[6] the
-- reason each session ended (see emit.lua; its stream is the hash prefix's `_events`). The {app}:{token}:{id}
-- members of SESSIONS are appended to `expiring` (the caller removes them in one ZREM).
-- `junk`: members of _sessions that name no session, removed in the same ZREM.
-- Returns the hashes deleted and the ids whose us: set ends empty (the caller removes
-- them from _users, or deletes _users).
local function kill_sessions(k, tokens, ids, expiring, junk)
  if #tokens == 0 then
    if junk and #junk > 0 then
      redis.call('ZREM', k[2], unpack(junk))
    end
    return 0, {}
  end
  local by_id, order = {}, {}
  for i, t in ipairs(tokens) do
    local id = ids[i]
    if not by_id[id] then
      by_id[id] = {}
      order[#order + 1] = id
    end
    local list = by_id[id]
    list[#list + 1] = t
  end
  local emptied = {}
  for _, id in ipairs(order) do
    local us = k[3] .. id
    local left = redis.call('SCARD', us)
    for _, t in ipairs(by_id[id]) do
      left = left - redis.call('SISMEMBER', us, t)
    end
    if left <= 0 then
      emptied[#emptied + 1] = id
    end
  end
  --E local ips = {}
  --E for i, t in ipairs(tokens) do
  --E   ips[i] = redis.call('HGET', k[1] .. t, 'ip') or ''
  --E end
  local hashes, members = {}, {}
  for i, t in ipairs(tokens) do
    hashes[i] = k[1] .. t
    members[i] = t .. ':' .. ids[i]
    expiring[#expiring + 1] = k[4] .. ':' .. t .. ':' .. ids[i]
  end
  for _, m in ipairs(junk or {}) do
    members[#members + 1] = m
  end
  local n = redis.call('DEL', unpack(hashes))
  redis.call('ZREM', k[2], unpack(members))
  for _, id in ipairs(order) do
    redis.call('SREM', k[3] .. id, unpack(by_id[id]))
  end
  for _, t in ipairs(tokens) do
    announce(k[5], k[4] .. ':' .. t)
  end
  --E for i, t in ipairs(tokens) do
  --E   emit(k[1] .. '_events', 'ended', k[6], ids[i], t, ips[i], '')
  --E end
  return n, emptied
end
