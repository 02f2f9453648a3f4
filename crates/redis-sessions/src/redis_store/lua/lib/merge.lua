-- The set merge, on JSON text, exactly as the Node module merges (JSON.parse, lodash
-- extend, JSON.stringify) but without reading a number: values stay the bytes they were.
--
-- Correct by construction: the stored text is read token by token by a JSON tokenizer
-- (strings end at their first unescaped quote, nothing is found by searching for a key),
-- and keys are compared in one spelling, the one JSON.stringify writes. The client sends
-- each given key and value in that spelling (ARGV pairs; a value `null` deletes).

-- The functions of the rare path (text not as JSON.stringify writes it, escapes in the
-- text, array-index keys), made only by a call that needs them: a script's top runs on
-- every call, and every function it defines there costs a closure each time (the merge's
-- eleven functions cost each set about 1 µs of Redis CPU; the three left at the top, 0.3).
local function rare_path()
  -- Ends the script with a typed error: the stored d is not a JSON object.
  local function corrupt()
    error({err = 'CORRUPT stored d is not a JSON object'})
  end

  -- The number an array-index key names ("0", "7"; not "07" or "4294967295"), else nil.
  local function array_index(k)
    if #k > 12 or not (k == '"0"' or string.find(k, '^"[1-9]%d*"$')) then
      return nil
    end
    local n = tonumber(string.sub(k, 2, -2))
    if n > 4294967294 then
      return nil
    end
    return n
  end

  -- Index of the first byte at or after i that is not JSON whitespace.
  local function skip_ws(s, i)
    local b = string.byte(s, i)
    if b == 32 or b == 9 or b == 10 or b == 13 then
      return (select(2, string.find(s, '^[ \t\n\r]*', i))) + 1
    end
    return i
  end

  -- Index of the closing quote of the JSON string that opens at i.
  local function string_end(s, i)
    local j = i + 1
    while true do
      local c = string.find(s, '["\\]', j)
      if not c then
        corrupt()
      end
      if string.byte(s, c) == 34 then
        return c
      end
      j = c + 2
    end
  end

  -- Index of the last byte of the JSON value that starts at i.
  local function value_end(s, i)
    local b = string.byte(s, i)
    if b == 34 then
      return string_end(s, i)
    end
    if b == 123 or b == 91 then
      -- An object or array (Node's set never writes one; a foreign writer may): skip it whole.
      local depth, j = 0, i
      while true do
        local c = string.find(s, '["{}%[%]]', j)
        if not c then
          corrupt()
        end
        local cb = string.byte(s, c)
        if cb == 34 then
          j = string_end(s, c) + 1
        else
          depth = depth + ((cb == 123 or cb == 91) and 1 or -1)
          if depth == 0 then
            return c
          end
          j = c + 1
        end
      end
    end
    local e = string.find(s, '[ \t\n\r,}]', i)
    if not e or e == i then
      corrupt()
    end
    return e - 1
  end

  -- The spelling JSON.stringify gives the key whose JSON text is k (quotes included): a key
  -- read with other escapes (`\/`, `\u0041`) then compares equal to the same key sent by us.
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
  local function canonical_key(k)
    if not string.find(k, '\\', 1, true) then
      return k
    end
    -- Built here, not at the top: most keys have no escape, and a script's top runs every call.
    local short = {[8] = '\\b', [9] = '\\t', [10] = '\\n', [12] = '\\f', [13] = '\\r',
      [34] = '\\"', [92] = '\\\\'}
    local out, i = {}, 1
    while true do
      local e = string.find(k, '\\', i, true)
      if not e then
        out[#out + 1] = string.sub(k, i)
        return table.concat(out)
      end
      out[#out + 1] = string.sub(k, i, e - 1)
      local x = string.sub(k, e + 1, e + 1)
      i = e + 2
      if x == 'u' then
        local c = tonumber(string.sub(k, e + 2, e + 5), 16)
        if not c then
          corrupt()
        end
        i = e + 6
        if c >= 0xD800 and c < 0xDC00 and string.sub(k, i, i + 1) == '\\u' then
          local lo = tonumber(string.sub(k, i + 2, i + 5), 16)
          if lo and lo >= 0xDC00 and lo < 0xE000 then
            c = 0x10000 + (c - 0xD800) * 0x400 + (lo - 0xDC00)
            i = i + 6
          end
        end
        if short[c] then
          out[#out + 1] = short[c]
        elseif c < 0x20 or (c >= 0xD800 and c < 0xE000) then
          -- Control characters and lone surrogates: JSON.stringify writes \u00xx / \udxxx.
          out[#out + 1] = string.format('\\u%04x', c)
        else
          out[#out + 1] = utf8(c)
        end
      elseif x == '/' then
        out[#out + 1] = '/'
      else
        out[#out + 1] = '\\' .. x
      end
    end
  end

  -- Reads the JSON object s into keys (JSON.stringify spelling), raw value texts and each
  -- key's place. A key given twice keeps its first place and its last value, as JSON.parse.
  local function parse_object(s, keys, vals, at)
    local i = skip_ws(s, 1)
    if string.byte(s, i) ~= 123 then
      corrupt()
    end
    i = skip_ws(s, i + 1)
    if string.byte(s, i) == 125 then
      return
    end
    while true do
      if string.byte(s, i) ~= 34 then
        corrupt()
      end
      local ke = string_end(s, i)
      local k = canonical_key(string.sub(s, i, ke))
      i = skip_ws(s, ke + 1)
      if string.byte(s, i) ~= 58 then
        corrupt()
      end
      i = skip_ws(s, i + 1)
      local ve = value_end(s, i)
      local p = at[k]
      if not p then
        p = #keys + 1
        keys[p] = k
        at[k] = p
      end
      vals[p] = string.sub(s, i, ve)
      i = skip_ws(s, ve + 1)
      local b = string.byte(s, i)
      if b == 125 then
        return
      end
      if b ~= 44 then
        corrupt()
      end
      i = skip_ws(s, i + 1)
    end
  end

  -- Merges ARGV[from..] (key, value pairs) into the stored object: a null value deletes,
  -- an existing key keeps its place, a new one goes last, and array-index keys come first in
  -- ascending order, as in every JavaScript object. Returns the new text, or nil when empty.
  -- Writes every member anew, in JSON.stringify's spelling: for any text JSON.parse reads.
  local function rebuild(stored, from)
    local keys, vals, at = {}, {}, {}
    if stored then
      parse_object(stored, keys, vals, at)
    end
    for i = from, #ARGV, 2 do
      local k, v = ARGV[i], ARGV[i + 1]
      local p = at[k]
      if v == 'null' then
        if p then
          vals[p] = false
        end
      elseif p then
        vals[p] = v
      else
        p = #keys + 1
        keys[p] = k
        vals[p] = v
        at[k] = p
      end
    end
    local out, indexed = {}, nil
    for p = 1, #keys do
      if vals[p] then
        local k = keys[p]
        local n = string.byte(k, 2) < 58 and array_index(k)
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
  return {string_end = string_end, canonical_key = canonical_key, rebuild = rebuild,
    array_index = array_index}
end

-- Reads text as JSON.stringify writes a flat object (no whitespace, no nested value, no
-- key twice, array-index keys first and in order) and lists the members whose key is in
-- want: where each starts, where its value starts and ends, and its key. Returns false
-- for any other text, a broken one included (rebuild then reads it in full, and reports
-- what is broken). The loop is the cost of every set, so it makes as few calls as it can.
local function scan_stringified(s, want, hits)
  local find, sub, byte = string.find, string.sub, string.byte
  local open, q, c = byte(s, 1, 3)
  if open ~= 123 then
    return false
  end
  if q == 125 then
    return true
  end
  -- Without a backslash in the text every quote is a delimiter: a plain search finds it.
  local escapes = find(s, '\\', 1, true)
  local slow = escapes and rare_path()
  local seen, i, plain, last = {}, 2, false, -1
  while true do
    if q ~= 34 then
      return false
    end
    local e = escapes and slow.string_end(s, i) or find(s, '"', i + 1, true)
    if not e then
      return false
    end
    local k = sub(s, i, e)
    if seen[k] or (escapes and slow.canonical_key(k) ~= k) then
      return false
    end
    seen[k] = true
    local index = false
    if c < 58 then
      slow = slow or rare_path()
      index = slow.array_index(k)
    end
    if index then
      if plain or index <= last then
        return false
      end
      last = index
    else
      plain = true
    end
    local colon, first = byte(s, e + 1, e + 2)
    if colon ~= 58 then
      return false
    end
    local ends
    if first == 34 then
      ends = escapes and slow.string_end(s, e + 2) or find(s, '"', e + 3, true)
      if not ends then
        return false
      end
    elseif first == 123 or first == 91 then
      return false
    else
      ends = find(s, '[,}%s]', e + 2)
      if not ends or ends == e + 2 then
        return false
      end
      ends = ends - 1
    end
    if want[k] then
      hits[#hits + 1] = {i, e + 2, ends, k}
    end
    local sep
    sep, q, c = byte(s, ends + 1, ends + 3)
    if sep == 125 then
      return true
    elseif sep ~= 44 then
      return false
    end
    i = ends + 2
  end
end

-- The merge (see rebuild for its rules). Text as JSON.stringify writes it, the text of
-- every store written by Node or by us, is spliced: what lies between the members that
-- change is copied in one piece, so the cost is one scan plus the changes. Any other text
-- is rebuilt.
local function merge(stored, from)
  local want = {}
  for i = from, #ARGV, 2 do
    want[ARGV[i]] = ARGV[i + 1]
  end
  local hits = {}
  if stored and not scan_stringified(stored, want, hits) then
    return rare_path().rebuild(stored, from)
  end
  local out, cursor = {}, 2
  for _, h in ipairs(hits) do
    -- Members between the last change and this one (their commas included).
    if cursor < h[1] - 1 then
      out[#out + 1] = string.sub(stored, cursor, h[1] - 2)
    end
    local v = want[h[4]]
    if v ~= 'null' then
      out[#out + 1] = string.sub(stored, h[1], h[2] - 1) .. v
    end
    want[h[4]] = nil
    cursor = h[3] + 2
  end
  if stored and cursor < #stored then
    out[#out + 1] = string.sub(stored, cursor, #stored - 1)
  end
  -- Keys not stored yet, in the order given (ARGV keeps it; want has lost it).
  for i = from, #ARGV, 2 do
    local k, v = ARGV[i], ARGV[i + 1]
    if want[k] and v ~= 'null' then
      if string.byte(k, 2) < 58 and rare_path().array_index(k) then
        -- A new array-index key takes its numeric place among the first keys.
        return rare_path().rebuild(stored, from)
      end
      out[#out + 1] = k .. ':' .. v
    end
  end
  if #out == 0 then
    return nil
  end
  return '{' .. table.concat(out, ',') .. '}'
end
