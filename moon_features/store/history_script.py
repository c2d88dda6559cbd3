"""One round trip for the serving lookup: a Lua script reads the user and their history items.

The history ids are inside the user's `hist_item_ids` value (a serialised Int64List), so a
client needs the user's reply before it can ask for the history items: two round trips. This
script does the second step inside Redis: it HMGETs the user, decodes the packed varints of
the sequence, builds each history item's Feast key (prefix + int64 LE + project) and HMGETs it.
The reader sends it in the same packed write as the candidates' HMGETs.

Lua numbers are doubles: ids outside [0, 2^53) or an unexpected encoding make the script answer
"fallback" and the reader does the second round trip itself, so correctness never depends on
the script. Not used on Redis Cluster (the history keys are not declared, so they may live on
another node).
"""
from __future__ import annotations

from typing import Sequence

SCRIPT = r"""
local user = redis.call('HMGET', KEYS[1], unpack(ARGV, 6, 5 + tonumber(ARGV[4])))
local seq = user[tonumber(ARGV[5])]
if not seq or #seq == 0 then return {user, {}} end
local pos, n = 1, #seq
local function varint()
  local value, scale = 0, 1
  for _ = 1, 8 do                       -- 8 groups = 56 bits; more than 2^53 is not exact
    if pos > n then return nil end
    local b = string.byte(seq, pos)
    pos = pos + 1
    value = value + (b % 128) * scale
    if b < 128 then return value end
    scale = scale * 128
  end
  return nil
end
if string.byte(seq, 1) ~= 0x72 then return {user, 'fallback'} end
pos = 2
local inner = varint()
if not inner then return {user, 'fallback'} end
local stop = pos + inner
local ids = {}
while pos < stop do
  local tag = varint()
  if tag == 10 then
    local size = varint()
    if not size then return {user, 'fallback'} end
    local last = pos + size
    while pos < last do
      local id = varint()
      if not id or id >= 9007199254740992 then return {user, 'fallback'} end
      ids[#ids + 1] = id
    end
  elseif tag == 8 then
    local id = varint()
    if not id or id >= 9007199254740992 then return {user, 'fallback'} end
    ids[#ids + 1] = id
  else
    return {user, 'fallback'}
  end
end
local prefix, project = ARGV[1], ARGV[2]
local nfields = tonumber(ARGV[3])
local first = 6 + tonumber(ARGV[4])
local out = {}
for i, id in ipairs(ids) do
  local bytes = {}
  local v = id
  for k = 1, 8 do
    bytes[k] = v % 256
    v = math.floor(v / 256)
  end
  local key = prefix .. string.char(unpack(bytes)) .. project
  out[i] = redis.call('HMGET', key, unpack(ARGV, first, first + nfields - 1))
end
return {user, out}
"""
SCRIPT_BYTES = SCRIPT.encode()


def eval_args(user_key: bytes, user_fields: Sequence[bytes], seq_index: int, item_prefix: bytes,
              project: str, item_fields: Sequence[bytes]) -> list[bytes]:
    """The EVAL command: script, 1 key, then ARGV = prefix, project, #item fields, #user fields,
    index of the sequence among the user fields (1-based), user fields, item fields."""
    return [b"EVAL", SCRIPT_BYTES, b"1", user_key, item_prefix, project.encode(), b"%d" % len(item_fields),
            b"%d" % len(user_fields), b"%d" % (seq_index + 1), *user_fields, *item_fields]
