-- The set merge, on JSON text, exactly as the Node module merges (JSON.parse, lodash
-- extend, JSON.stringify), and never on text JSON.parse would refuse.
--
-- The client sends each given key and value in JSON.stringify's spelling (ARGV pairs from
-- `from`); an empty value deletes the key (a value text is never empty, and `null` is a
-- value Node stores: JSON.stringify writes Infinity as null).
--
-- Two paths. Text exactly as JSON.stringify writes a flat object (what Node and we write)
-- is spliced: validated whole in one scan, and what lies between the members that change
-- is copied in one piece. Any other text is read in full by a JSON reader and written anew
-- as JSON.stringify would write what JSON.parse makes of it (whitespace dropped, escapes,
-- numbers and duplicate keys as Node resolves them); text that is not a JSON object ends
-- the script with CORRUPT before anything is written.
--
-- Bounded work (docs/limits.md): a stored text over 65536 bytes, or a result over 1000
-- keys, ends the script with TOOLARGE, again before anything is written. The client
-- refuses larger calls before sending them.

-- The functions of the rare path, made only by a call that needs them: a script's top runs
-- on every call, and every function it defines there costs a closure each time.
local function rare_path()
  local find, sub, byte, gsub, format = string.find, string.sub, string.byte, string.gsub,
    string.format

  -- Ends the script with a typed error: the stored d is not a JSON object.
  local function corrupt()
    error({err = 'CORRUPT stored d is not a JSON object'})
  end

  -- The number an array-index key names ("0", "7"; not "07" or "4294967295"), else nil.
  local function array_index(k)
    if #k > 12 or not (k == '"0"' or find(k, '^"[1-9]%d*"$')) then
      return nil
    end
    local n = tonumber(sub(k, 2, -2))
    if n > 4294967294 then
      return nil
    end
    return n
  end

  local function utf8(c)
    if c < 0x80 then
      return string.char(c)
    elseif c < 0x800 then
      return string.char(0xC0 + math.floor(c / 0x40), 0x80 + c % 0x40)
    elseif c < 0x10000 then
      return string.char(0xE0 + math.floor(c / 0x1000), 0x80 + math.floor(c / 0x40) % 0x40,
        0x80 + c % 0x40)
    end
    return string.char(0xF0 + math.floor(c / 0x40000), 0x80 + math.floor(c / 0x1000) % 0x40,
      0x80 + math.floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
  end

  -- JSON.stringify's escape of one UTF-16 unit read from `\uXXXX`: the short escapes, \u00xx
  -- for other control characters, \udxxx for a lone surrogate, the character itself else.
  -- A backslash comes out as \1, the placeholder canonical_string puts back last.
  local short = {[8] = '\\b', [9] = '\\t', [10] = '\\n', [12] = '\\f', [13] = '\\r',
    [34] = '\\"', [92] = '\1'}
  local function unit(hex)
    local c = tonumber(hex, 16)
    if short[c] then
      return short[c]
    elseif c < 0x20 or (c >= 0xD800 and c < 0xE000) then
      return format('\\u%04x', c)
    end
    return utf8(c)
  end
  local function pair(hi, lo)
    return utf8(0x10000 + (tonumber(hi, 16) - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00))
  end

  -- The JSON string that opens at s[i], in JSON.stringify's spelling, and the index of its
  -- closing quote. `t` is s with every escape pair blanked (same length), so its first
  -- quote after i is the closing one, whatever the escapes.
  local function canonical_string(s, t, i)
    local e = find(t, '"', i + 1, true)
    if not e then
      corrupt()
    end
    local str = sub(s, i, e)
    if find(str, '[\t\n\r]') then
      -- Raw control characters in a string (the others are refused for the whole text).
      corrupt()
    end
    if not find(str, '\\', 1, true) then
      return str, e
    end
    -- Escaped backslashes out of the way: every backslash left starts an escape of its own.
    local x = gsub(str, '\\\\', '\1')
    if not find(x, '\\[^"bfnrt]') then
      -- Only the short escapes, which JSON.stringify writes the same.
      return str, e
    end
    local probe = gsub(gsub(x, '\\["/bfnrt]', ''), '\\u%x%x%x%x', '')
    if find(probe, '\\', 1, true) then
      -- An escape JSON does not have (`\x`, `\u12`).
      corrupt()
    end
    x = gsub(x, '\\/', '/')
    -- Surrogate pairs first (a high then a low unit is one character), then single units.
    x = gsub(x, '\\u([dD][89abAB]%x%x)\\u([dD][c-fC-F]%x%x)', pair)
    x = gsub(x, '\\u(%x%x%x%x)', unit)
    return (gsub(x, '\1', '\\\\')), e
  end

  -- ECMAScript's Number::toString of x (JSON.stringify: non-finite numbers are null).
  local function js_number(x)
    if x ~= x or x == math.huge or x == -math.huge then
      return 'null'
    elseif x == 0 then
      return '0'
    end
    -- The fewest digits that read back as x: what ECMAScript writes.
    local m
    for p = 0, 16 do
      m = format('%.' .. p .. 'e', x)
      if tonumber(m) == x then
        break
      end
    end
    local neg, d1, rest, ex = string.match(m, '^(%-?)(%d)%.?(%d*)e([%+%-]%d+)$')
    local digits = (gsub(d1 .. rest, '0+$', ''))
    local k, n = #digits, tonumber(ex) + 1
    if k <= n and n <= 21 then
      return neg .. digits .. string.rep('0', n - k)
    elseif 0 < n and n <= 21 then
      return neg .. sub(digits, 1, n) .. '.' .. sub(digits, n + 1)
    elseif -6 < n and n <= 0 then
      return neg .. '0.' .. string.rep('0', -n) .. digits
    end
    local e = n - 1
    local es = e < 0 and ('-' .. -e) or ('+' .. e)
    if k == 1 then
      return neg .. digits .. 'e' .. es
    end
    return neg .. sub(digits, 1, 1) .. '.' .. sub(digits, 2) .. 'e' .. es
  end

  -- The JSON number at s[i] (JSON's grammar, nothing more), as JSON.stringify writes it,
  -- and the index of its last byte.
  local function number(s, i)
    local _, e = find(s, '^%-?0', i)
    if not e then
      _, e = find(s, '^%-?[1-9]%d*', i)
      if not e then
        corrupt()
      end
      if e - i < 15 and byte(s, i) ~= 45 and not find(s, '^[%.eE]', e + 1) then
        -- A plain integer of at most 15 digits is already written as ECMAScript writes it.
        return sub(s, i, e), e
      end
    end
    local _, f = find(s, '^%.%d+', e + 1)
    e = f or e
    _, f = find(s, '^[eE][%+%-]?%d+', e + 1)
    e = f or e
    return js_number(tonumber(sub(s, i, e))), e
  end

  -- Index of the first byte at or after i that is not JSON whitespace.
  local function skip_ws(s, i)
    local b = byte(s, i)
    if b == 32 or b == 9 or b == 10 or b == 13 then
      return (select(2, find(s, '^[ \t\n\r]*', i))) + 1
    end
    return i
  end

  local value

  -- Members as JSON.stringify lists them: array-index keys first in ascending order, then
  -- the others in their order. Returns the object's text, or nil when it has none.
  local function assemble(keys, vals)
    local out, indexed = {}, nil
    for p = 1, #keys do
      if vals[p] then
        local k = keys[p]
        local n = byte(k, 2) < 58 and array_index(k)
        if n then
          indexed = indexed or {}
          indexed[#indexed + 1] = {n, k .. ':' .. vals[p]}
        else
          out[#out + 1] = k .. ':' .. vals[p]
        end
      end
    end
    if indexed then
      table.sort(indexed, function(a, b) return a[1] < b[1] end)
      for j = 1, #indexed do
        indexed[j] = indexed[j][2]
      end
      for j = 1, #out do
        indexed[#indexed + 1] = out[j]
      end
      out = indexed
    end
    if #out == 0 then
      return nil
    end
    return '{' .. table.concat(out, ',') .. '}'
  end

  -- Reads the JSON object at s[i] into keys (JSON.stringify spelling), value texts (as
  -- JSON.stringify writes them) and each key's place. A key given twice keeps its first
  -- place and its last value, as JSON.parse. Returns the index of the closing brace.
  local function members(s, t, i, depth, keys, vals, at)
    if byte(s, i) ~= 123 or depth > 64 then
      corrupt()
    end
    i = skip_ws(s, i + 1)
    if byte(s, i) == 125 then
      return i
    end
    while true do
      if byte(s, i) ~= 34 then
        corrupt()
      end
      local k, ke = canonical_string(s, t, i)
      i = skip_ws(s, ke + 1)
      if byte(s, i) ~= 58 then
        corrupt()
      end
      local v, ve = value(s, t, skip_ws(s, i + 1), depth)
      local p = at[k]
      if not p then
        p = #keys + 1
        keys[p] = k
        at[k] = p
      end
      vals[p] = v
      i = skip_ws(s, ve + 1)
      local b = byte(s, i)
      if b == 125 then
        return i
      elseif b ~= 44 then
        corrupt()
      end
      i = skip_ws(s, i + 1)
    end
  end

  -- The JSON value at s[i] as JSON.stringify writes it, and the index of its last byte.
  value = function(s, t, i, depth)
    local b = byte(s, i)
    if b == 34 then
      return canonical_string(s, t, i)
    elseif b == 123 then
      local keys, vals = {}, {}
      local e = members(s, t, i, depth + 1, keys, vals, {})
      return assemble(keys, vals) or '{}', e
    elseif b == 91 then
      if depth > 64 then
        corrupt()
      end
      local out = {}
      i = skip_ws(s, i + 1)
      if byte(s, i) == 93 then
        return '[]', i
      end
      while true do
        local v, e = value(s, t, i, depth + 1)
        out[#out + 1] = v
        i = skip_ws(s, e + 1)
        local c = byte(s, i)
        if c == 93 then
          return '[' .. table.concat(out, ',') .. ']', i
        elseif c ~= 44 then
          corrupt()
        end
        i = skip_ws(s, i + 1)
      end
    end
    if b == 116 and sub(s, i, i + 3) == 'true' then
      return 'true', i + 3
    elseif b == 102 and sub(s, i, i + 4) == 'false' then
      return 'false', i + 4
    elseif b == 110 and sub(s, i, i + 3) == 'null' then
      return 'null', i + 3
    end
    return number(s, i)
  end

  -- Merges ARGV[from..] into the stored object (see the top of this file), reading the
  -- stored text in full. Returns the new text, or nil when no key is left.
  local function rebuild(stored, from)
    local keys, vals, at = {}, {}, {}
    if stored then
      if find(stored, '[%z\1-\8\11\12\14-\31]') then
        -- Control characters other than whitespace are valid nowhere in JSON text.
        corrupt()
      end
      local t = stored
      if find(stored, '\\', 1, true) then
        t = gsub(stored, '\\.', '__')
      end
      local e = members(stored, t, skip_ws(stored, 1), 0, keys, vals, at)
      if skip_ws(stored, e + 1) <= #stored then
        corrupt()
      end
    end
    local count = 0
    for p = 1, #keys do
      if vals[p] then
        count = count + 1
      end
    end
    for i = from, #ARGV, 2 do
      local k, v = ARGV[i], ARGV[i + 1]
      local p = at[k]
      if v == '' then
        if p and vals[p] then
          vals[p] = false
          count = count - 1
        end
      elseif p then
        if not vals[p] then
          count = count + 1
        end
        vals[p] = v
      else
        p = #keys + 1
        keys[p] = k
        vals[p] = v
        at[k] = p
        count = count + 1
      end
    end
    if count > 1000 then
      error({err = 'TOOLARGE the data would have more than 1000 keys'})
    end
    local merged = assemble(keys, vals)
    if merged and #merged > 65536 then
      error({err = 'TOOLARGE the data would be over 65536 bytes'})
    end
    return merged
  end
  return {rebuild = rebuild, array_index = array_index}
end

-- Reads text as JSON.stringify writes a flat object: no whitespace, no nested value, no
-- key twice, array-index keys first and in order, no escape but the short ones, numbers
-- as ECMAScript writes them (checked conservatively: a number this scan is not sure of
-- sends the text to the rebuild, which writes it as Node would), and nothing after the
-- closing brace. Lists the members whose key is in want: where each starts, where its
-- value starts and ends, and its key; and in places, where each array-index member starts
-- and its number, and (places.plain) where the first other member starts. Returns the number of members, or false for any
-- other text (the rebuild then reads it in full, and reports what is broken). The loop is
-- the cost of every set, so it makes as few calls as it can.
local function scan_stringified(s, want, hits, places)
  local find, sub, byte = string.find, string.sub, string.byte
  local n = #s
  if byte(s, n) ~= 125 then
    return false
  end
  -- No control character anywhere (raw ones are invalid in strings, and JSON.stringify
  -- writes no whitespace). Lua's pattern matcher costs ~100 instructions a byte, a plain search
  -- (memchr) a fraction of that: on a long text, 32 plain searches are the cheaper.
  if n < 128 then
    if find(s, '[%z\1-\31]') then
      return false
    end
  else
    for b = 0, 31 do
      if find(s, string.char(b), 1, true) then
        return false
      end
    end
  end
  local open, q, c = byte(s, 1, 3)
  if open ~= 123 then
    return false
  end
  if q == 125 then
    return n == 2 and 0
  end
  -- t: s with each short escape blanked, so that every quote left is a delimiter. Any
  -- other escape (\u, \/, a broken one) sends the text to the rebuild.
  local t = s
  if find(s, '\\', 1, true) then
    t = string.gsub(s, '\\[\\"bfnrt]', '__')
    if find(t, '\\', 1, true) then
      return false
    end
  end
  local seen, i, plain, last, count = {}, 2, false, -1, 0
  local slow
  while true do
    if q ~= 34 then
      return false
    end
    local e = find(t, '"', i + 1, true)
    if not e then
      return false
    end
    local k = sub(s, i, e)
    if seen[k] then
      return false
    end
    seen[k] = true
    count = count + 1
    if c < 58 then
      slow = slow or rare_path()
      local index = slow.array_index(k)
      if index then
        if plain or index <= last then
          return false
        end
        last = index
        places[#places + 1] = {i, index}
      elseif not plain then
        places.plain = i
        plain = true
      end
    elseif not plain then
      places.plain = i
      plain = true
    end
    local colon, first = byte(t, e + 1, e + 2)
    if colon ~= 58 then
      return false
    end
    local ends
    if first == 34 then
      ends = find(t, '"', e + 3, true)
      if not ends then
        return false
      end
    elseif first == 116 then
      ends = find(t, '^true', e + 2) and e + 5
    elseif first == 102 then
      ends = find(t, '^false', e + 2) and e + 6
    elseif first == 110 then
      ends = find(t, '^null', e + 2) and e + 5
    else
      -- Numbers ECMAScript writes as they are: an integer of at most 15 digits without a
      -- leading zero, or 0; a fraction of at most 15 digits with no trailing zero and at
      -- most five zeros after `0.`. Any other number goes to the rebuild.
      local a, b = find(t, '^%-?[1-9]%d*', e + 2)
      if a then
        local digits = b - a + 1 - (first == 45 and 1 or 0)
        if byte(t, b + 1) == 46 then
          local _, f = find(t, '^%d*[1-9]', b + 2)
          if not f then
            return false
          end
          digits = digits + f - b - 1
          b = f
        end
        if digits > 15 then
          return false
        end
      elseif find(t, '^0[,}]', e + 2) then
        b = e + 2
      else
        -- 0.000001 is the smallest fraction ECMAScript writes without an exponent.
        local z, f = find(t, '^%-?0%.0*[1-9]%d*', e + 2)
        if not z then
          return false
        end
        local point = z + (first == 45 and 2 or 1)
        local _, zeros = find(t, '^0*', point + 1)
        if zeros - point > 5 or f - zeros > 15 or byte(t, f) == 48 then
          return false
        end
        b = f
      end
      ends = b
    end
    if not ends then
      return false
    end
    if want[k] then
      hits[#hits + 1] = {i, e + 2, ends, k}
    end
    local sep
    sep, q, c = byte(t, ends + 1, ends + 3)
    if sep == 125 then
      return ends + 1 == n and count
    elseif sep ~= 44 then
      return false
    end
    i = ends + 2
  end
end

-- The merge (see the top of this file).
local function merge(stored, from)
  if stored == '' then
    -- Node reads an empty d as no data.
    stored = nil
  end
  if stored and #stored > 65536 then
    error({err = 'TOOLARGE the stored data is over 65536 bytes'})
  end
  local want = {}
  for i = from, #ARGV, 2 do
    want[ARGV[i]] = ARGV[i + 1]
  end
  local hits, places = {}, {}
  local count = 0
  if stored then
    count = scan_stringified(stored, want, hits, places)
    if not count then
      return rare_path().rebuild(stored, from)
    end
  end
  -- New array-index keys take their numeric place among the first keys: before the first
  -- stored index member with a larger number, else before the first other member, else
  -- last (before the other new keys). Each is an edit at a place, like a changed member.
  local slow, appended, found
  for i = from, #ARGV, 2 do
    local k = ARGV[i]
    if want[k] and ARGV[i + 1] ~= '' and string.byte(k, 2) < 58 then
      if not slow then
        slow, found = rare_path(), {}
        for _, h in ipairs(hits) do
          found[h[4]] = true
        end
      end
      local n = not found[k] and slow.array_index(k)
      if n then
        local at = places.plain
        for j = 1, #places do
          if places[j][2] > n then
            at = places[j][1]
            break
          end
        end
        local edit = {at or false, n, k .. ':' .. ARGV[i + 1]}
        if at then
          hits[#hits + 1] = edit
        else
          appended = appended or {}
          appended[#appended + 1] = edit
        end
        want[k] = nil
        count = count + 1
      end
    end
  end
  if slow and #hits > 1 then
    -- Places first; at one place, the new keys (in numeric order) before the member there.
    table.sort(hits, function(a, b)
      if a[1] ~= b[1] then
        return a[1] < b[1]
      end
      -- A new key (no a[4]) goes before the stored member at its place.
      local an, bn = a[4] == nil, b[4] == nil
      if an ~= bn then
        return an
      end
      return an and a[2] < b[2]
    end)
  end
  local out, cursor = {}, 2
  for _, h in ipairs(hits) do
    -- Members between the last edit and this one (their commas included).
    if cursor < h[1] - 1 then
      out[#out + 1] = string.sub(stored, cursor, h[1] - 2)
    end
    if h[4] == nil then
      -- A new index key, before the member at h[1] (which is copied later).
      out[#out + 1] = h[3]
      cursor = h[1]
    else
      local v = want[h[4]]
      if v ~= '' then
        out[#out + 1] = string.sub(stored, h[1], h[2] - 1) .. v
      else
        count = count - 1
      end
      want[h[4]] = nil
      cursor = h[3] + 2
    end
  end
  if stored and cursor < #stored then
    out[#out + 1] = string.sub(stored, cursor, #stored - 1)
  end
  if appended then
    table.sort(appended, function(a, b) return a[2] < b[2] end)
    for _, a in ipairs(appended) do
      out[#out + 1] = a[3]
    end
  end
  -- Keys not stored yet, in the order given (ARGV keeps it; want has lost it).
  for i = from, #ARGV, 2 do
    local k, v = ARGV[i], ARGV[i + 1]
    if want[k] and v ~= '' then
      out[#out + 1] = k .. ':' .. v
      count = count + 1
      want[k] = nil
    end
  end
  if count > 1000 then
    error({err = 'TOOLARGE the data would have more than 1000 keys'})
  end
  if #out == 0 then
    return nil
  end
  local merged = '{' .. table.concat(out, ',') .. '}'
  if #merged > 65536 then
    error({err = 'TOOLARGE the data would be over 65536 bytes'})
  end
  return merged
end
