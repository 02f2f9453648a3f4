-- The layout record of a namespace: written on first use, then only read.
-- KEYS[1] {ns}:{layout}; ARGV[1] kind, ARGV[2] shards, ARGV[3] version.
-- Returns what is recorded (kind, shards, version), the given values when it was absent.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'shards', ARGV[2], 'version', ARGV[3])
  return {ARGV[1], ARGV[2], ARGV[3]}
end
return redis.call('HMGET', KEYS[1], 'kind', 'shards', 'version')
