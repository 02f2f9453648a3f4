-- Appends a session lifecycle event to its app's stream (`…{app}:_events`, see events.rs),
-- in the script that makes the change, so an event exists if and only if the change
-- happened. Loaded only into the scripts of a store whose events are on: the lines that
-- call it start with `--E ` and scripts.rs uncomments them then, so with events off the
-- scripts run the code they ran before. Every event has the same fields (Redis then stores
-- the names once per stream node, not per event): type, reason ('' for created), the
-- user's id, the device handle (device.rs: SHA-1 of the token cut to 32 characters, never
-- the token), ip, ttl ('' for ended). The time is the entry's id (the server's clock, ms).
-- `MAXLEN ~` trims whole nodes only, which costs Redis almost nothing per XADD. With a
-- retention by age (EVENTS_MAXAGE_MS > 0), `XTRIM MINID ~` drops the nodes older than
-- that, by the server's clock (the entry ids' clock).
local function emit(stream, kind, reason, id, token, ip, ttl)
  redis.call('XADD', stream, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', kind, 'reason', reason,
    'id', id, 'device', string.sub(redis.sha1hex(token), 1, 32), 'ip', ip, 'ttl', ttl)
  if EVENTS_MAXAGE_MS > 0 then
    local t = redis.call('TIME')
    local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - EVENTS_MAXAGE_MS
    redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', math.max(oldest, 0)))
  end
end
