"""A real Redis Cluster on loopback ports, for tests and benchmarks (3 masters + 3 replicas).

Starts `redis-server --cluster-enabled yes` processes in a temporary directory, joins them with
`redis-cli --cluster create --cluster-replicas 1`, waits for cluster_state:ok on every node, and on
`stop()` ends exactly the processes it started. `kill(port)` / `restart(port)` drive failover tests.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import MoonFeaturesError


class LocalClusterError(MoonFeaturesError, RuntimeError):
    """The local cluster could not start: redis-server / redis-cli missing or a node did not come up."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """n ports whose cluster-bus partner (port + 10000) is free as well."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000 and port not in ports and _port_free(port + 10000):
            ports.append(port)
    return ports


def _cli(port: int, *args: str, timeout: float = 5.0) -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, text=True,
                         timeout=timeout)
    return out.stdout


class LocalRedisCluster:
    """`with LocalRedisCluster() as c:` ... `c.connection_string` is what feature_store.yaml needs."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2000, root: str | None = None):
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise LocalClusterError(f"{tool} is not on PATH; install Redis (apt-get install redis-server)")
        self.n = masters * (1 + replicas)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="moon_cluster_"))
        self.ports = free_ports(self.n)
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def connection_string(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def _spawn(self, port: int) -> None:
        workdir = self.root / str(port)
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "redis.log", "ab")
        # No persistence: a killed node comes back empty and resyncs from its new master.
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms),
             "--dir", str(workdir), "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        log.close()

    def _wait(self, what, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise LocalClusterError(f"local Redis Cluster: {what} within {timeout:.0f} s; logs in {self.root}")

    def start(self) -> "LocalRedisCluster":
        for port in self.ports:
            self._spawn(port)
        for port in self.ports:
            self._wait(f"node {port} did not answer PING", lambda p=port: _cli(p, "ping").strip() == "PONG", 10)
        out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            self.stop()
            raise LocalClusterError(f"redis-cli --cluster create failed: {out.stdout[-500:]} {out.stderr[-500:]}")
        self.wait_ok()
        return self

    def cluster_ok(self, ports=None) -> bool:
        """Every node sees the whole cluster in state ok, and every replica has synced its master
        (an unsynced replica would refuse to take over, and WAIT would not count it)."""
        for port in ports or self.alive_ports():
            info = _cli(port, "cluster", "info")
            if "cluster_state:ok" not in info or f"cluster_known_nodes:{self.n}" not in info:
                return False
            replication = _cli(port, "info", "replication")
            if "role:slave" in replication and "master_link_status:up" not in replication:
                return False
            if self.replicas and "role:master" in replication and "slave0:" not in replication:
                return False
        return True

    def wait_ok(self, timeout: float = 30) -> None:
        self._wait("cluster_state:ok was not reached", self.cluster_ok, timeout)

    def alive_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def masters(self) -> list[int]:
        """Ports of the alive nodes that are masters now (each node's own ROLE)."""
        return [p for p in self.alive_ports() if self.role(p) == "master"]

    def role(self, port: int) -> str:
        return _cli(port, "role").split("\n", 1)[0].strip()

    def snapshot(self, project: str) -> dict[bytes, dict]:
        """Every hash of a Feast project across the masters, keyed by full Redis key."""
        import redis

        out: dict[bytes, dict] = {}
        for port in self.masters():
            client = redis.Redis(host="127.0.0.1", port=port)
            for key in client.scan_iter(match=b"*" + project.encode(), count=1000):
                out[key] = client.hgetall(key)
            client.close()
        return out

    def kill(self, port: int) -> None:
        """SIGKILL one node the cluster started (no chance to hand over)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """Start a killed node again on its port; it rejoins the cluster from its nodes.conf."""
        self._spawn(port)
        self._wait(f"node {port} did not answer PING", lambda: _cli(port, "ping").strip() == "PONG", 10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalRedisCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
