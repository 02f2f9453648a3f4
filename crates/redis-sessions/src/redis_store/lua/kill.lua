-- kill: removes the session whether live or dead (tidying); 1 when it was live. No read is counted.
local v = redis.call('HMGET', KEYS[1], 'id', 'ttl', 'la')
if not v[1] then
  return 0
end
local live = tonumber(v[2]) >= tonumber(ARGV[1]) - tonumber(v[3])
kill_session(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[2], ARGV[3], v[1], ARGV[5])
if live then
  return 1
end
return 0
