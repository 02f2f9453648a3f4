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
