"""One atomic step for a new positive event on Redis: a Lua script appends it to a user's sequences.

ARGV: the item (encoded), L, the time in microseconds, the TTL, then one (ids field, length
field, timestamp field) triple per sequence view the event enters (the main one first; its
row is the answer). Every view is read and computed before one HSET writes them all, so an
event enters all of its sequences or none of them (every view of a user is one Redis hash).

Redis runs a script alone, so the read (the stored sequence and its time), the append, the trim
to the last L items and the write happen with no other client in between: concurrent events for
one user are all kept, whatever their interleaving. What it writes is exactly Feast's layout of
the sequence view (redis_codec): `hist_item_ids` as a serialised Value(int64_list_val),
`hist_len` as Value(int64_val), and the view's `_ts:<view>` google.protobuf.Timestamp.

Ids never become Lua numbers (doubles): the stored list is split into its varints as byte
strings and the new id arrives already encoded, so any int64 id survives. Only the time is a
number, in microseconds (< 2^53 for every year up to 2255).

A stored time at or after the event's moves the event 1 microsecond past it (Feast keeps the
newest row, and an event that arrives late must still be appended, not dropped).
"""
from __future__ import annotations

SCRIPT = r"""
local new_item, max_len, when_us, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local function read_varint(s, pos)      -- returns (value as a number, next position); small values only
  local value, scale = 0, 1
  while true do
    local b = string.byte(s, pos)
    if not b then return nil, pos end
    pos = pos + 1
    value = value + (b % 128) * scale
    if b < 128 then return value, pos end
    scale = scale * 128
  end
end
local function varint_bytes(s, pos)     -- one varint as its bytes (ids stay exact)
  local start = pos
  while true do
    local b = string.byte(s, pos)
    if not b then return nil, pos end
    pos = pos + 1
    if b < 128 then return string.sub(s, start, pos - 1), pos end
  end
end
local function varint(v)
  local out = {}
  while v >= 128 do
    out[#out + 1] = string.char(v % 128 + 128)
    v = math.floor(v / 128)
  end
  out[#out + 1] = string.char(v)
  return table.concat(out)
end

-- one sequence view: its new value, length and timestamp, written by the caller (nil, error on a bad row)
local function appended(seq_field, ts_field)
  local stored = redis.call('HMGET', KEYS[1], seq_field, ts_field)
  local seq, ts, t = stored[1], stored[2], when_us
  local items = {}
  if seq and #seq > 0 then
    if string.byte(seq, 1) ~= 0x72 then return nil, 'MOON hist_item_ids is not an int64 list' end
    local inner, pos = read_varint(seq, 2)
    local stop = pos + inner
    while pos < stop do
      local tag
      tag, pos = read_varint(seq, pos)
      if tag == 10 then
        local size
        size, pos = read_varint(seq, pos)
        local last = pos + size
        while pos < last do
          local v
          v, pos = varint_bytes(seq, pos)
          if not v then return nil, 'MOON truncated hist_item_ids' end
          items[#items + 1] = v
        end
      elseif tag == 8 then
        local v
        v, pos = varint_bytes(seq, pos)
        if not v then return nil, 'MOON truncated hist_item_ids' end
        items[#items + 1] = v
      else
        return nil, 'MOON unexpected field in hist_item_ids'
      end
    end
  end
  items[#items + 1] = new_item
  local first = math.max(1, #items - max_len + 1)
  local packed = table.concat(items, '', first, #items)
  local count = #items - first + 1
  local inner = '\10' .. varint(#packed) .. packed
  local value = '\114' .. varint(#inner) .. inner

  if ts and #ts > 0 then                  -- google.protobuf.Timestamp: 1 seconds, 2 nanos
    local seconds, nanos, pos = 0, 0, 1
    while pos <= #ts do
      local tag, v
      tag, pos = read_varint(ts, pos)
      v, pos = read_varint(ts, pos)
      if tag == 8 then seconds = v elseif tag == 16 then nanos = v end
    end
    local stored_us = seconds * 1000000 + math.floor(nanos / 1000)
    if t <= stored_us then t = stored_us + 1 end
  end
  local seconds = math.floor(t / 1000000)
  local micros = t - seconds * 1000000
  local stamp = ''
  if seconds > 0 then stamp = '\8' .. varint(seconds) end
  if micros > 0 then stamp = stamp .. '\16' .. varint(micros * 1000) end

  return value, count, stamp, t
end

-- every view first, then one HSET: the event enters all of its sequences or none
local writes, result = {}, nil
for i = 5, #ARGV, 3 do
  local value, count, stamp, t = appended(ARGV[i], ARGV[i + 2])
  if not value then return redis.error_reply(count) end
  for _, v in ipairs({ARGV[i], value, ARGV[i + 1], '\32' .. varint(count), ARGV[i + 2], stamp}) do
    writes[#writes + 1] = v
  end
  result = result or {value, string.format('%.0f', t)}   -- the first view's row is the answer
end
redis.call('HSET', KEYS[1], unpack(writes))
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return result
"""
