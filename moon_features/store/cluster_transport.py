"""Redis Cluster for the fast paths: commands grouped by hash slot's node, one packed pipeline per node.

redis-py's cluster pipeline builds a Python object per command; here each row's key is hashed to
its slot with numpy (CRC16, the cluster's own function), rows are grouped by the node that owns
the slot in redis-py's slot map, each node gets one pre-packed RESP write, and the replies of all
nodes are read after every write went out (the nodes work in parallel).

Topology changes (failover, resharding): a connection error or a MOVED / ASK / CLUSTERDOWN /
TRYAGAIN reply refreshes the slot map and the whole call is retried; the callers only send
idempotent commands (HMGET, HSET of fixed values, EXPIRE), so a retry is safe. With
`wait_replicas` > 0 every node's write ends with `WAIT n timeout`: a call returns only when each
node's writes reached n replicas (otherwise ReplicationTimeoutError), so an acknowledged write
survives the loss of its master.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from ..errors import MoonFeaturesError
from .errors import OnlineStoreUnavailableError

SLOTS = 16384
_TOPOLOGY = (MovedError, AskError, ClusterDownError, TryAgainError)
_BRACE = ord("{")


class ReplicationTimeoutError(MoonFeaturesError, RuntimeError):
    """A write reached its master but not `wait_replicas` replicas in time; it may be lost on failover."""


def _crc16_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table[i] = crc & 0xFFFF
    return table


_TABLE = _crc16_table()


def key_slots(keys: np.ndarray | Sequence[bytes]) -> np.ndarray:
    """Hash slot of every key: an [n, width] uint8 matrix (one key per row) or a list of bytes.

    CRC16-XMODEM over the whole key, vectorised over rows; keys containing '{' may have a hash
    tag, so those few go through redis-py's key_slot (the reference implementation).
    """
    if not isinstance(keys, np.ndarray):
        width = len(keys[0]) if len(keys) else 0
        if not all(len(k) == width for k in keys):
            return np.array([key_slot(k) for k in keys], dtype=np.int64)
        keys = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), width)
    crc = np.zeros(len(keys), dtype=np.uint16)
    for col in range(keys.shape[1]):
        crc = (crc << np.uint16(8)) ^ _TABLE[((crc >> np.uint16(8)) ^ keys[:, col]).astype(np.uint8)]
    slots = crc.astype(np.int64) % SLOTS
    for i in np.flatnonzero((keys == _BRACE).any(axis=1)):
        slots[i] = key_slot(keys[i].tobytes())
    return slots


class ClusterRouter:
    """Packed, per-node pipelines over a redis.cluster.RedisCluster client's slot map."""

    def __init__(self, client, errors, wait_replicas: int = 0, wait_timeout_ms: int = 1000, attempts: int = 3):
        self.client = client
        self.errors = errors  # RedisTransport.errors: connection errors -> OnlineStoreUnavailableError
        self.wait_replicas = int(wait_replicas)
        self.wait_timeout_ms = int(wait_timeout_ms)
        self.attempts = attempts
        self._owner: np.ndarray | None = None  # slot -> index into self._nodes
        self._nodes: list = []

    def groups(self, slots: np.ndarray) -> list[tuple[object, np.ndarray]]:
        """(node, row numbers in order) for every node that owns some of the slots."""
        if self._owner is None:
            self._load_slot_map()
        owner = self._owner[slots]
        return [(self._nodes[j], np.flatnonzero(owner == j)) for j in np.unique(owner).tolist()]

    def _load_slot_map(self) -> None:
        """slot -> primary node, as one array (redis-py's slots_cache holds a list per slot)."""
        cache = self.client.nodes_manager.slots_cache
        nodes, index = [], {}
        owner = np.zeros(SLOTS, dtype=np.int64)
        for slot in range(SLOTS):
            entry = cache.get(slot)
            if not entry:
                from redis.exceptions import SlotNotCoveredError

                raise ClusterDownError(f"slot {slot} is not covered by the cluster") from SlotNotCoveredError()
            name = entry[0].name
            if name not in index:
                index[name] = len(nodes)
                nodes.append(entry[0])
            owner[slot] = index[name]
        self._owner, self._nodes = owner, nodes

    def execute(self, slots: np.ndarray, pack: Callable[[np.ndarray], tuple[bytes, int]],
                write: bool = False) -> list[tuple[np.ndarray, list]]:
        """pack(rows) -> (RESP payload, reply count) per node; returns (rows, replies) per node.

        Retries the whole call after a topology change (see module doc); `write` adds the WAIT.
        """
        for attempt in range(self.attempts):
            try:
                with self.errors():
                    return self._execute_once(slots, pack, write)
            except Exception as e:
                retryable = isinstance(e, _TOPOLOGY + (OnlineStoreUnavailableError,))
                if not retryable or attempt == self.attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                self.refresh()
        raise AssertionError("unreachable")

    def hmget_many(self, requests: Sequence[tuple[Sequence[bytes], Sequence[bytes]]]) -> list[list]:
        """RedisTransport.hmget_many on a cluster: replies in request order."""
        from .redis_connection import pack_hmgets

        keys = [k for ks, _ in requests for k in ks]
        if not keys:
            return []
        bounds = np.cumsum([0] + [len(ks) for ks, _ in requests])
        request_of = np.searchsorted(bounds, np.arange(len(keys)), side="right") - 1

        def pack(rows):  # rows are sorted: consecutive rows of one request share their fields
            segments = np.split(rows, np.flatnonzero(np.diff(request_of[rows])) + 1)
            return b"".join(pack_hmgets([keys[i] for i in seg.tolist()], requests[request_of[seg[0]]][1])
                            for seg in segments), len(rows)

        return _in_order(len(keys), self.execute(key_slots(keys), pack))

    def execute_commands(self, commands: Sequence[Sequence[bytes]], write: bool = True) -> list:
        """Commands whose second argument is their key, one packed write per node; replies in order."""
        from .redis_connection import pack_command

        commands = list(commands)
        if not commands:
            return []

        def pack(rows):
            return b"".join(pack_command(commands[i]) for i in rows.tolist()), len(rows)

        return _in_order(len(commands), self.execute(key_slots([c[1] for c in commands]), pack, write))

    def refresh(self) -> None:
        """Re-read the slot map from any reachable node (redis-py's NodesManager)."""
        self._owner = None
        try:
            self.client.nodes_manager.initialize()
        except Exception:
            pass  # every node unreachable: the retry raises OnlineStoreUnavailableError

    def _execute_once(self, slots, pack, write):
        from .redis_connection import RedisTransport

        sent = []
        try:
            for node, rows in self.groups(slots):
                payload, count = pack(rows)
                if write and self.wait_replicas:
                    payload += b"*3\r\n$4\r\nWAIT\r\n$%d\r\n%d\r\n$%d\r\n%d\r\n" % (
                        len(str(self.wait_replicas)), self.wait_replicas,
                        len(str(self.wait_timeout_ms)), self.wait_timeout_ms)
                    count += 1
                pool = self.client.get_redis_connection(node).connection_pool
                conn = pool.get_connection()
                sent.append((node, rows, count, pool, conn))
                conn.send_packed_command([payload], check_health=False)
            out = []
            for node, rows, count, pool, conn in sent:
                replies = RedisTransport._read_replies(conn, count)
                out.append((node, rows, replies))
        except BaseException:
            for _, _, _, _, conn in sent:
                conn.disconnect()  # a half-read reply stream must never be reused
            raise
        finally:
            for _, _, _, pool, conn in sent:
                pool.release(conn)
        return [(rows, self._check(node, replies, write)) for node, rows, replies in out]

    def _check(self, node, replies: list, write: bool) -> list:
        for r in replies:
            if isinstance(r, _TOPOLOGY):
                raise r
            if isinstance(r, Exception):
                raise ResponseError(str(r))
        if write and self.wait_replicas:
            acked = replies.pop()
            if int(acked) < self.wait_replicas:
                raise ReplicationTimeoutError(
                    f"Redis node {node.name} acknowledged the write to {acked} of {self.wait_replicas} replicas "
                    f"within {self.wait_timeout_ms} ms; the write may be lost if that master fails. Check the "
                    "cluster's replicas (redis-cli --cluster check) or lower wait_replicas.")
        return replies


def _in_order(n: int, results: list[tuple[np.ndarray, list]]) -> list:
    out: list = [None] * n
    for rows, replies in results:
        for i, reply in zip(rows.tolist(), replies):
            out[i] = reply
    return out
