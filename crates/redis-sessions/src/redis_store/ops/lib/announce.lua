-- Announces a write to the caches of a fleet. `spec` is the invalidation channel with
-- its command in the first character: 'P' PUBLISH (the Node layout's `{ns}:cache`, which
-- Node processes listen on), 'S' SPUBLISH (the cluster layout's per-shard channel, which
-- reaches only the shard's master and replicas instead of every node of the cluster).
local function announce(spec, message)
  if string.byte(spec, 1) == 83 then
    redis.call('SPUBLISH', string.sub(spec, 2), message)
  else
    redis.call('PUBLISH', string.sub(spec, 2), message)
  end
end
