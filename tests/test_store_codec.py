"""The numpy wire codec against Feast's own serialisers, byte for byte (no Redis needed)."""
from datetime import datetime, timezone

import numpy as np
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import FloatList, Int64List, Value
from google.protobuf.timestamp_pb2 import Timestamp

from moon_features.store import redis_codec as codec

IDS = [0, 1, 127, 128, 2**31, 2**62, -1, -(2**63)]


def entity(join_key, i):
    return EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=i)])


def test_entity_keys_match_feast():
    assert codec.serialize_int64_keys("item_id", IDS) == [
        serialize_entity_key(entity("item_id", i), entity_key_serialization_version=3) for i in IDS]
    assert codec.redis_keys("user_id", IDS, "proj_x") == [_redis_key("proj_x", entity("user_id", i), 3) for i in IDS]


def test_field_names_match_feast():
    assert codec.feature_field("item_moon_embedding_v1", "embedding") == _mmh3("item_moon_embedding_v1:embedding")
    assert codec.timestamp_field("user_profile") == b"_ts:user_profile"


@pytest.mark.parametrize("dim", [1, 16, 31, 32, 64, 128, 256, 768, 4097])
def test_float_lists_match_protobuf_and_round_trip(dim):
    m = np.random.default_rng(dim).standard_normal((3, dim)).astype(np.float32)
    encoded = codec.encode_float_lists(m)
    assert encoded == [Value(float_list_val=FloatList(val=row)).SerializeToString() for row in m]
    out, found, bad = codec.decode_float_lists(encoded + [None, b""], dim)
    assert np.array_equal(out[:3], m) and found.tolist() == [True] * 3 + [False, False] and not bad.any()
    assert not out[3:].any()


def test_float_list_decoder_flags_other_dimensions_and_accepts_unpacked():
    good = codec.encode_float_lists(np.ones((1, 8), np.float32))[0]
    other = codec.encode_float_lists(np.ones((1, 4), np.float32))[0]
    # The same list written unpacked (legal protobuf, never produced by Feast): field 1, wire type 5.
    unpacked_inner = b"".join(b"\x0d" + np.float32(2.0).tobytes() for _ in range(8))
    unpacked = b"\x82\x01" + codec.varint(len(unpacked_inner)) + unpacked_inner
    assert Value.FromString(unpacked).float_list_val.val == [2.0] * 8
    out, found, bad = codec.decode_float_lists([good, other, unpacked, codec.encode_int64(3)], 8)
    assert found.tolist() == [True, False, True, False]
    assert bad.tolist() == [False, True, False, True]
    assert np.array_equal(out[2], np.full(8, 2.0, np.float32)) and not out[1].any()


@pytest.mark.parametrize("values", [
    (IDS * 10)[:3],              # few values: the plain Python path
    (IDS * 10)[:40],             # mixed varint widths: the windowed vectorised path
    list(range(1, 41)),          # one width: the [n, width] matrix path
    [300 + i for i in range(40)] + [-5] * 3,  # two-byte and ten-byte varints
    [-(2**63)] * 20,             # ten-byte varints only
])
def test_int64_scalars(values):
    n = len(values)
    encoded = [codec.encode_int64(v) for v in values]
    assert encoded == [Value(int64_val=v).SerializeToString() for v in values]
    decoded, found = codec.decode_int64s(encoded + [None, b""])
    assert decoded[:n].tolist() == values and found.tolist() == [True] * n + [False, False]


def test_int64_scalars_of_one_width_with_trailing_bytes_decode_their_first_varint():
    """Same-width values that are not exactly one varint leave the matrix path and decode as
    the windowed decoder reads them: the first varint after the tag."""
    encoded = [codec.encode_int64(5) + b"\x05"] * 20
    decoded, found = codec.decode_int64s(encoded)
    assert found.all() and decoded.tolist() == [5] * 20


def test_float_scalars():
    values = [0.0, -1.5, 3.25e10, np.float32(0.1)]
    encoded = [codec.encode_float(v) for v in values]
    assert encoded == [Value(float_val=v).SerializeToString() for v in values]
    decoded, found = codec.decode_floats(encoded + [None])
    assert np.array_equal(decoded[:4], np.array(values, np.float32)) and found.tolist() == [True] * 4 + [False]


@pytest.mark.parametrize("values", [[], [5], [1, 300, 2**40, -7], list(range(50))])
def test_int64_lists(values):
    encoded = codec.encode_int64_list(values)
    assert encoded == Value(int64_list_val=Int64List(val=values)).SerializeToString()
    assert codec.decode_int64_list(encoded).tolist() == values
    assert codec.decode_int64_list(None) is None


def test_timestamps_match_protobuf():
    for dt in [datetime(2026, 1, 5, 12, 30, 1, 123456, tzinfo=timezone.utc), datetime(1970, 1, 2, tzinfo=timezone.utc),
               datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc)]:
        ts = Timestamp()
        ts.FromDatetime(dt)
        us = int((dt - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6)
        assert codec.encode_timestamp_us(us) == ts.SerializeToString()
        assert codec.decode_timestamp_ns(ts.SerializeToString()) == ts.seconds * 10**9 + ts.nanos
