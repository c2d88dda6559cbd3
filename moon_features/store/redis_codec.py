"""Feast's online wire format, encoded and decoded with numpy instead of protobuf objects.

What Feast (0.67, entity_key_serialization_version 3) writes to Redis, and what this module
reproduces byte for byte (tests compare against Feast's own functions):

* Redis key of an entity: ``serialize_entity_key(EntityKey) + project``. For one Int64 join key
  that is a constant prefix (key count, STRING tag, name length, name, INT64 tag, length 8), the
  id as little-endian int64, then the project name.
* One Redis hash per entity, shared by every feature view of that entity. A feature is stored
  under the 4-byte field ``mmh3("<view>:<feature>")``; the view's event time under
  ``"_ts:<view>"`` as a google.protobuf.Timestamp.
* A value is a serialised ``feast.types.Value``. The shapes used here are
    - ``float_list_val`` (field 16): 0x82 0x01, len, [0x0a, len(4d), d packed float32]: for a fixed
      dimension everything before the floats is a constant header, so a batch of vectors decodes
      with one ``np.frombuffer``;
    - ``int64_val`` (field 4): 0x20 + varint;  ``float_val`` (field 6): 0x35 + float32;
    - ``int64_list_val`` (field 14): 0x72, len, [0x0a, len, packed varints];
    - an unset Value (a null) is the empty string.
"""
from __future__ import annotations

import struct
from typing import Sequence

import mmh3
import numpy as np
from feast.protos.feast.types.Value_pb2 import Value

_STRING, _INT64 = 2, 4  # feast.types.ValueType enum values used in entity keys
TAG_INT64 = b"\x20"
TAG_FLOAT = b"\x35"
TAG_INT64_LIST = b"\x72"
TAG_FLOAT_LIST = b"\x82\x01"


# --- keys and field names -----------------------------------------------------------------
def entity_key_prefix(join_key: str) -> bytes:
    """Bytes before the id in serialize_entity_key(EntityKey([join_key], [Int64])), version 3."""
    name = join_key.encode()
    return struct.pack("<III", 1, _STRING, len(name)) + name + struct.pack("<II", _INT64, 8)


def serialize_int64_keys(join_key: str, ids: Sequence[int] | np.ndarray) -> list[bytes]:
    """Feast's serialized entity keys (without project) for many Int64 ids."""
    prefix = entity_key_prefix(join_key)
    raw = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).astype("<i8", copy=False)).tobytes()
    return [prefix + raw[i:i + 8] for i in range(0, len(raw), 8)]


def redis_keys(join_key: str, ids: Sequence[int] | np.ndarray, project: str) -> list[bytes]:
    """Redis hash keys of many Int64 entities: serialized entity key + project."""
    prefix = entity_key_prefix(join_key)
    suffix = project.encode()
    raw = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).astype("<i8", copy=False)).tobytes()
    return [prefix + raw[i:i + 8] + suffix for i in range(0, len(raw), 8)]


def feature_field(view: str, feature: str) -> bytes:
    """The Redis hash field of a feature: little-endian murmur3_32 of "<view>:<feature>"."""
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


# --- varints --------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    """Protobuf varint of an int64 (negative values take ten bytes, two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varints_at(buf: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode one varint at each offset of a uint8 buffer, vectorised: (values int64, lengths)."""
    if len(starts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    window = starts[:, None] + np.arange(10)
    padded = np.concatenate([buf, np.zeros(10, np.uint8)])
    octets = padded[np.minimum(window, len(padded) - 1)].astype(np.uint64)
    last = (octets & 0x80) == 0
    length = np.argmax(last, axis=1) + 1
    keep = np.arange(10)[None, :] < length[:, None]
    shifted = np.where(keep, (octets & np.uint64(0x7F)) << (np.uint64(7) * np.arange(10, dtype=np.uint64)),
                       np.uint64(0))
    return np.bitwise_or.reduce(shifted, axis=1).view(np.int64), length.astype(np.int64)


def _decode_packed_varints(payload: bytes) -> np.ndarray:
    """All varints of a packed repeated field, in order."""
    out, pos = [], 0
    while pos < len(payload):
        value, pos = _read_varint(payload, pos)
        out.append(value)
    return np.array(out, dtype=np.uint64).view(np.int64) if out else np.zeros(0, np.int64)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


# --- float vectors --------------------------------------------------------------------------
def float_list_header(dim: int) -> bytes:
    """Everything a serialised float_list_val of `dim` floats holds before the float bytes."""
    if dim < 1:
        raise ValueError(f"dimension must be >= 1, got {dim}")
    payload = 4 * dim
    inner = b"\x0a" + varint(payload)
    return TAG_FLOAT_LIST + varint(len(inner) + payload) + inner


def encode_float_lists(matrix: np.ndarray) -> list[bytes]:
    """Serialised Value(float_list_val) for each row of a [n, d] float32 matrix, no protobuf objects."""
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    n, d = matrix.shape
    header = float_list_header(d)
    raw = matrix.tobytes()
    step = 4 * d
    return [header + raw[i:i + step] for i in range(0, n * step, step)]


def decode_float_lists(values: Sequence[bytes | None], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode serialised float-list Values into ([n, dim] float32, found mask, bad mask).

    Missing or empty values give a zero row, found False. A value of another length or layout
    is decoded through protobuf once (it may be a valid but unusual encoding); if it still is
    not `dim` floats its row is zero and `bad` is True, so the caller can name those items.
    """
    n = len(values)
    header = float_list_header(dim)
    size = len(header) + 4 * dim
    out = np.zeros((n, dim), dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return out, found, bad
    vals = [v or b"" for v in values]
    sizes = np.fromiter(map(len, vals), dtype=np.int64, count=n)
    fast = sizes == size
    if fast.all():
        flat = np.frombuffer(b"".join(vals), dtype=np.uint8).reshape(n, size)
    elif fast.any():
        flat = np.frombuffer(b"".join([v for v, ok in zip(vals, fast) if ok]), dtype=np.uint8).reshape(-1, size)
    else:
        flat = np.zeros((0, size), dtype=np.uint8)
    if len(flat):
        same_header = (flat[:, :len(header)] == np.frombuffer(header, dtype=np.uint8)).all(axis=1)
        rows = np.flatnonzero(fast)
        out[rows[same_header]] = flat[same_header, len(header):].copy().view("<f4")
        found[rows[same_header]] = True
        fast[rows[~same_header]] = False
    for i in np.flatnonzero(~fast & (sizes > 0)):
        vec = _slow_float_list(vals[i])
        if vec is not None and len(vec) == dim:
            out[i] = vec
            found[i] = True
        elif not (vec is not None and len(vec) == 0):  # an empty list is as good as missing
            bad[i] = True
    return out, found, bad


def _slow_float_list(value: bytes) -> np.ndarray | None:
    proto = Value.FromString(value)
    if proto.WhichOneof("val") != "float_list_val":
        return None
    return np.asarray(proto.float_list_val.val, dtype=np.float32)


# --- scalars and int64 lists ----------------------------------------------------------------
def encode_int64(value: int) -> bytes:
    return TAG_INT64 + varint(int(value))


def encode_float(value: float) -> bytes:
    return TAG_FLOAT + struct.pack("<f", value)


def encode_int64_list(values: Sequence[int] | np.ndarray) -> bytes:
    packed = b"".join(varint(int(v)) for v in values)
    inner = (b"\x0a" + varint(len(packed)) + packed) if packed else b""
    return TAG_INT64_LIST + varint(len(inner)) + inner


def decode_int64s(values: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Decode many serialised Value(int64_val) at once: (int64 [n], found mask); missing -> 0."""
    n = len(values)
    if n <= 16:  # a user's few fields: plain Python beats setting up the vectorised decoder
        decoded = [decode_int64_value(v) for v in values]
        return (np.array([0 if d is None else d for d in decoded], dtype=np.int64),
                np.array([d is not None for d in decoded], dtype=bool))
    found = np.fromiter((bool(v) and v[0] == 0x20 for v in values), dtype=bool, count=n)
    out = np.zeros(n, dtype=np.int64)
    if found.any():
        chosen = [v for v, ok in zip(values, found) if ok]
        lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
        buf = np.frombuffer(b"".join(chosen), dtype=np.uint8)
        same = _same_width_varints(buf, lengths)
        if same is not None:
            out[found] = same
        else:
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) + 1  # skip the tag byte
            out[found], _ = decode_varints_at(buf, starts)
    return out, found


def _same_width_varints(buf: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Values that are all one tag byte + one varint of the same width (the usual case: codes of
    one vocabulary) decode as a [n, width] matrix, without decode_varints_at's 10-byte windows.
    None if the widths differ or a value is not exactly one varint."""
    width = int(lengths[0]) - 1
    if width < 1 or width > 10 or not bool((lengths == width + 1).all()):
        return None
    octets = buf.reshape(-1, width + 1)[:, 1:].astype(np.uint64)
    continued = (octets & np.uint64(0x80)) != 0
    if not continued[:, :-1].all() or continued[:, -1].any():
        return None
    shifts = np.uint64(7) * np.arange(width, dtype=np.uint64)
    return np.bitwise_or.reduce((octets & np.uint64(0x7F)) << shifts, axis=1).view(np.int64)


def decode_floats(values: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Decode many serialised Value(float_val): (float32 [n], found mask); missing -> 0."""
    n = len(values)
    found = np.fromiter((bool(v) and len(v) == 5 and v[0] == 0x35 for v in values), dtype=bool, count=n)
    out = np.zeros(n, dtype=np.float32)
    if found.any():
        buf = np.frombuffer(b"".join(v for v, ok in zip(values, found) if ok), dtype=np.uint8).reshape(-1, 5)
        out[found] = buf[:, 1:].copy().view("<f4")[:, 0]
    return out, found


def decode_int64_list(value: bytes | None) -> np.ndarray | None:
    """A serialised Value(int64_list_val) as an int64 array; None when missing or another type."""
    if not value or value[:1] != TAG_INT64_LIST:
        return None
    inner_len, pos = _read_varint(value, 1)
    end = pos + inner_len
    items = []
    while pos < end:  # the inner Int64List: field 1, packed (0x0a) or, rarely, unpacked (0x08)
        tag, pos = _read_varint(value, pos)
        if tag == 0x0A:
            size, pos = _read_varint(value, pos)
            items.append(_decode_packed_varints(value[pos:pos + size]))
            pos += size
        elif tag == 0x08:
            v, pos = _read_varint(value, pos)
            items.append(np.array([v], dtype=np.uint64).view(np.int64))
        else:
            raise ValueError(f"unexpected field tag {tag} in an Int64List")
    return np.concatenate(items) if items else np.zeros(0, np.int64)


def decode_int64_value(value: bytes | None) -> int | None:
    if not value or value[:1] != TAG_INT64:
        return None
    v, _ = _read_varint(value, 1)
    return v - (1 << 64) if v >= 1 << 63 else v


# --- timestamps -----------------------------------------------------------------------------
def encode_timestamp_us(us: int) -> bytes:
    """google.protobuf.Timestamp of a UTC time given in microseconds since the epoch."""
    seconds, micros = divmod(int(us), 1_000_000)
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if micros:
        out += b"\x10" + varint(micros * 1000)
    return out


def varint_matrix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of many int64s at once: ([n, 10] uint8 bytes, lengths); row i is bytes[i, :lengths[i]]."""
    v = np.asarray(values, dtype=np.int64).view(np.uint64)
    shifts = np.uint64(7) * np.arange(10, dtype=np.uint64)
    groups = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    length = 1 + ((v[:, None] >> shifts[1:]) != 0).sum(axis=1)
    more = np.arange(10)[None, :] < (length - 1)[:, None]
    return groups | (more.astype(np.uint8) << 7), length


def encode_timestamps_us(us: np.ndarray) -> list[bytes]:
    """encode_timestamp_us for many times, vectorised (Feast stamps every row it writes)."""
    us = np.asarray(us, dtype=np.int64)
    n = len(us)
    if n == 0:
        return []
    seconds = np.floor_divide(us, 1_000_000)
    nanos = (us - seconds * 1_000_000) * 1000
    sec_bytes, sec_len = varint_matrix(seconds)
    ns_bytes, ns_len = varint_matrix(nanos)
    has_sec, has_ns = seconds != 0, nanos != 0
    # Row layout: [0x08, seconds varint (10)] [0x10, nanos varint (10)]; a mask keeps the real bytes.
    table = np.concatenate([np.full((n, 1), 0x08, np.uint8), sec_bytes, np.full((n, 1), 0x10, np.uint8), ns_bytes], axis=1)
    cols = np.arange(11)[None, :]
    keep = np.concatenate([(cols <= sec_len[:, None]) & has_sec[:, None],
                           (cols <= ns_len[:, None]) & has_ns[:, None]], axis=1)
    flat = table[keep].tobytes()
    ends = np.cumsum(keep.sum(axis=1))
    starts = ends - keep.sum(axis=1)
    return [flat[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def int64_key_matrix(join_key: str, ids: np.ndarray, project: str) -> np.ndarray:
    """Redis keys of many Int64 entities as one [n, width] uint8 matrix (see redis_keys)."""
    ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).astype("<i8", copy=False))
    prefix = np.frombuffer(entity_key_prefix(join_key), np.uint8)
    suffix = np.frombuffer(project.encode(), np.uint8)
    n = len(ids)
    return np.concatenate([np.broadcast_to(prefix, (n, len(prefix))), ids.view(np.uint8).reshape(n, 8),
                           np.broadcast_to(suffix, (n, len(suffix)))], axis=1)


def float_list_matrix(matrix: np.ndarray) -> np.ndarray:
    """Serialised Value(float_list_val) of every row as one [n, width] uint8 matrix."""
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    n, d = matrix.shape
    header = np.frombuffer(float_list_header(d), np.uint8)
    return np.concatenate([np.broadcast_to(header, (n, len(header))), matrix.view(np.uint8).reshape(n, 4 * d)], axis=1)


def decode_timestamp_ns(value: bytes | None) -> int | None:
    """A serialised google.protobuf.Timestamp as nanoseconds since the epoch (None if missing)."""
    if value is None:
        return None
    seconds = nanos = 0
    pos = 0
    while pos < len(value):
        tag, pos = _read_varint(value, pos)
        v, pos = _read_varint(value, pos)
        if tag == 0x08:
            seconds = v - (1 << 64) if v >= 1 << 63 else v
        elif tag == 0x10:
            nanos = v
    return seconds * 1_000_000_000 + nanos
