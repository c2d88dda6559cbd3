"""A Redis client for the fast paths, built from the same feature_store.yaml section Feast reads.

Feast's connection_string is ``host:port[,host:port...][,param=value...]`` (params are redis-py
keyword arguments, e.g. ``db=3,password=...,ssl=true``) and ``redis_type`` picks plain Redis,
Redis Cluster or Sentinel. `RedisTransport` sends many commands as one pre-packed RESP write and
reads the replies straight from hiredis: one round trip, no per-command Python objects.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterable, Sequence

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .errors import OnlineStoreUnavailableError

try:  # the marker redis-py's hiredis reader returns when a reply is incomplete
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - other redis-py layouts fall back to read_response
    NOT_ENOUGH_DATA = None

# Without a connect timeout an unreachable host hangs for the OS default (minutes); a ranking
# request would rather get a 503 quickly. A connection string may override both.
DEFAULT_CONNECT_TIMEOUT_S = 2.0
DEFAULT_SOCKET_TIMEOUT_S = 10.0
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def parse_connection_string(connection_string: str) -> tuple[list[tuple[str, int]], dict]:
    """Exactly Feast's parsing (RedisOnlineStore._parse_connection_string): nodes and kwargs."""
    nodes, params = [], {}
    for part in connection_string.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
            params[key] = value
        else:
            host, _, port = part.rpartition(":")
            nodes.append((host or part, int(port) if port.isdigit() else 6379))
    return nodes, params


def _kind(online_config) -> str:
    value = getattr(online_config, "redis_type", "redis")
    return getattr(value, "value", value)


def describe_address(online_config) -> str:
    nodes, params = parse_connection_string(online_config.connection_string)
    where = ",".join(f"{h}:{p}" for h, p in nodes) or online_config.connection_string
    db = f"/{params['db']}" if "db" in params else ""
    kind = _kind(online_config)
    return f"{kind} {where}{db}" if kind != "redis" else f"{where}{db}"


def unavailable(online_config, exc: BaseException) -> OnlineStoreUnavailableError:
    address = describe_address(online_config)
    return OnlineStoreUnavailableError(
        f"Redis at {address} is unreachable ({exc.__class__.__name__}: {exc}). Start Redis or fix "
        "online_store.connection_string in feature_store.yaml (MOON_REDIS_URL if it uses ${MOON_REDIS_URL}).",
        address=address)


def make_client(online_config):
    """redis.Redis, a Sentinel master, or redis.cluster.RedisCluster, as Feast would build it."""
    nodes, params = parse_connection_string(online_config.connection_string)
    params.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    params.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT_S)
    # redis-py 7 retries 3 times with exponential backoff (seconds in total) by default; a
    # request path wants one quick reconnect (a stale pooled socket) and then a 503.
    params.setdefault("retry", Retry(NoBackoff(), 1))
    kind = _kind(online_config)
    if kind == "redis_cluster":
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **params)
    if kind == "redis_sentinel":
        from redis.sentinel import Sentinel

        return Sentinel(nodes, **params).master_for(getattr(online_config, "sentinel_master", "mymaster"))
    host, port = nodes[0]
    return redis.Redis(host=host, port=port, **params)


def pack_command(args: Sequence[bytes]) -> bytes:
    """One command in RESP: *<n> then $<len> <arg> for every argument."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def pack_rows(args: Sequence[bytes | np.ndarray], n: int) -> bytes:
    """n commands whose every argument has a fixed width, packed in RESP by numpy.

    Each argument is either bytes (the same in every command) or an [n, width] uint8 matrix
    (row i belongs to command i). No per-command Python work: one concatenate, one tobytes.
    """
    blocks: list = [b"*%d\r\n" % len(args)]
    for a in args:
        width = len(a) if isinstance(a, bytes) else a.shape[1]
        blocks.append(b"$%d\r\n" % width)
        blocks.append(a)
        blocks.append(b"\r\n")
    merged: list = []
    for b in blocks:  # adjacent constants become one block
        if isinstance(b, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += b
        else:
            merged.append(b)
    cols = [np.broadcast_to(np.frombuffer(b, np.uint8), (n, len(b))) if isinstance(b, bytes) else b for b in merged]
    return np.concatenate(cols, axis=1).tobytes()


def pack_hmgets(keys: Sequence[bytes], fields: Sequence[bytes]) -> bytes:
    """HMGET key <fields> for every key, packed in RESP with as few Python operations as possible."""
    tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
    width = len(keys[0])
    if all(len(k) == width for k in keys):  # entity keys of one type and project: one join
        sep = b"\r\n" + tail + head + b"$%d\r\n" % width
        return head + b"$%d\r\n" % width + sep.join(keys) + b"\r\n" + tail
    return b"".join(head + b"$%d\r\n%s\r\n" % (len(k), k) + tail for k in keys)


class RedisTransport:
    """Pipelined HMGET / HSET over one connection, with a clear error when Redis is unreachable."""

    def __init__(self, online_config):
        self.config = online_config
        self.address = describe_address(online_config)
        self.client = make_client(online_config)
        self.is_cluster = _kind(online_config) == "redis_cluster"
        self.router = None
        if self.is_cluster:  # grouped by hash slot's node, one packed pipeline per node
            from .cluster_transport import ClusterRouter

            self.router = ClusterRouter(self.client, self.errors, getattr(online_config, "wait_replicas", 0),
                                        getattr(online_config, "wait_timeout_ms", 1000))

    def ping(self) -> None:
        with self.errors():
            self.client.ping()

    @contextmanager
    def errors(self):
        """Turn redis-py's connection errors into OnlineStoreUnavailableError naming the address."""
        try:
            yield
        except _UNREACHABLE as e:
            raise unavailable(self.config, e) from e

    # --- reads ----------------------------------------------------------------------------
    def hmget_many(self, requests: Sequence[tuple[Sequence[bytes], Sequence[bytes]]]) -> list[list]:
        """For each (keys, fields): HMGET every key; one flat list of replies in request order."""
        if self.is_cluster:
            return self.router.hmget_many(requests)
        packed = []
        count = 0
        for keys, fields in requests:
            if not len(keys):
                continue
            packed.append(pack_hmgets(keys, fields))
            count += len(keys)
        return self.execute_packed(b"".join(packed), count)

    # --- writes ---------------------------------------------------------------------------
    def execute_commands(self, commands: Iterable[Sequence[bytes]]) -> list:
        """Keyed commands (key second) in one pipelined round trip (cluster: one per node, in parallel)."""
        if self.is_cluster:
            return self.router.execute_commands(commands)
        packed = [pack_command(c) for c in commands]
        return self.execute_packed(b"".join(packed), len(packed))

    def execute_packed(self, payload: bytes, count: int) -> list:
        """Send pre-packed RESP commands and read `count` replies; reply errors are raised."""
        if count == 0:
            return []
        with self.errors():
            pool = self.client.connection_pool
            conn = pool.get_connection()
            try:
                conn.send_packed_command([payload], check_health=False)
                replies = self._read_replies(conn, count)
            except BaseException:
                # A half-read reply stream must never be handed to the next caller.
                conn.disconnect()
                raise
            finally:
                pool.release(conn)
        for r in replies:
            if isinstance(r, Exception):
                raise ResponseError(str(r))
        return replies

    @staticmethod
    def _read_replies(conn, count: int) -> list:
        parser = getattr(conn, "_parser", None)
        reader = getattr(parser, "_reader", None)
        if reader is None or NOT_ENOUGH_DATA is None or not hasattr(parser, "read_from_socket"):
            return [conn.read_response() for _ in range(count)]
        # hiredis fast path: take replies from the parser's reader, refill it from the socket
        # only when it runs dry (redis-py's read_response does the same, one call per reply).
        out = []
        gets = reader.gets
        while len(out) < count:
            reply = gets()
            if reply is NOT_ENOUGH_DATA:
                parser.read_from_socket()
                continue
            out.append(reply)
        return out

    def stream(self) -> "ReplyStream":
        """A connection held across several sends: replies are read later, in order. While Redis
        works through one batch the caller prepares the next (see bulk_writer)."""
        if self.is_cluster:
            raise NotImplementedError("streamed writes need one connection; Redis Cluster uses pipelines")
        with self.errors():
            return ReplyStream(self, self.client.connection_pool.get_connection())

    def close(self) -> None:
        self.client.close()


class ReplyStream:
    """Pre-packed commands sent now, their replies collected later (FIFO), on one connection."""

    def __init__(self, transport: RedisTransport, conn):
        self.transport = transport
        self.conn = conn
        self.pending = 0

    def send(self, payload: bytes, count: int) -> None:
        if count:
            with self.transport.errors():
                self.conn.send_packed_command([payload], check_health=False)
            self.pending += count

    def collect(self) -> list:
        """Every outstanding reply, in send order; the first error reply is raised."""
        count, self.pending = self.pending, 0
        with self.transport.errors():
            replies = RedisTransport._read_replies(self.conn, count)
        for r in replies:
            if isinstance(r, Exception):
                raise ResponseError(str(r))
        return replies

    def close(self, failed: bool = False) -> None:
        """Return the connection; after a failure drain what was sent (so every command that
        reached Redis is acknowledged before the caller looks) and drop the connection."""
        pool = self.transport.client.connection_pool
        try:
            if failed and self.pending:
                try:
                    self.collect()
                except Exception:
                    pass
                self.conn.disconnect()
        finally:
            pool.release(self.conn)
