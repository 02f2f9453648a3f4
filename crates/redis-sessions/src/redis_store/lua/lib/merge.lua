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

-- True when `s` is compact JSON without escapes (as JSON.stringify and serde_json write
-- it): then no string can hold a quote, so `"key":` can only be that key.
local function plain(s)
  return not (string.find(s, '\\', 1, true) or string.find(s, '[\n\r\t]')
    or string.find(s, '": ', 1, true) or string.find(s, '" :', 1, true)
    or string.find(s, ', "', 1, true) or string.find(s, '" ,', 1, true)
    or string.find(s, '{ ', 1, true) or string.find(s, ' }', 1, true))
end

-- The merge for plain text: each given key is found with one plain search and its value
-- spliced in place, so the cost does not grow with the size of the stored object.
local function merge_plain(stored, from)
  local s = stored or '{}'
  for i = from, #ARGV, 2 do
    local k, val = ARGV[i], ARGV[i + 1]
    local at = string.find(s, k .. ':', 1, true)
    if at then
      local vs = at + #k + 1
      local ve
      if string.byte(s, vs) == 34 then
        ve = string.find(s, '"', vs + 1, true)
      else
        ve = (string.find(s, '[,}]', vs) or (#s + 1)) - 1
      end
      if val ~= 'null' then
        s = string.sub(s, 1, vs - 1) .. val .. string.sub(s, ve + 1)
      elseif string.byte(s, ve + 1) == 44 then
        s = string.sub(s, 1, at - 1) .. string.sub(s, ve + 2)
      elseif string.byte(s, at - 1) == 44 then
        s = string.sub(s, 1, at - 2) .. string.sub(s, ve + 1)
      else
        s = string.sub(s, 1, at - 1) .. string.sub(s, ve + 1)
      end
    elseif val ~= 'null' then
      if s == '{}' then
        s = '{' .. k .. ':' .. val .. '}'
      else
        s = string.sub(s, 1, #s - 1) .. ',' .. k .. ':' .. val .. '}'
      end
    end
  end
  if s == '{}' then
    return nil
  end
  return s
end

-- Merges ARGV[from..] (key, value JSON texts; value `null` deletes) into the stored object.
-- Existing keys keep their place and new ones are appended, as lodash's extend does.
-- Returns the new JSON text, or nil when no key is left.
local function merge(stored, from)
  local fast = (not stored) or plain(stored)
  for i = from, #ARGV do
    if fast and string.find(ARGV[i], '\\', 1, true) then
      fast = false
    end
  end
  if fast then
    return merge_plain(stored, from)
  end
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
