"""Frozen tower outputs kept on disk, so a second run on the same catalogue skips the tower pass.

A frozen pretrained tower is a fixed function of its input, so its output for an item can be
reused by every later `encoder train`, `embed` and `evaluate` as long as three things are the
same: the tower (its weights and architecture), the preprocessing (image size, normalisation,
augmentation seed; token ids for text) and the item's content (the image file's bytes, the text's
token ids). The first is the folder's fingerprint, the other two are each entry's key, so a
changed image or title invalidates that item's entry only and a different tower uses another
folder.

Layout: `<root>/<namespace>-<fingerprint>/shard-<n>.pt`, each shard a dict
{"keys": [str], "values": {name: tensor (n, ...)}} written atomically (tmp file + rename). Shards
are append-only: new entries go to a new shard; nothing is rewritten.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm


def module_fingerprint(module: nn.Module, *extra) -> str:
    """sha1 of a module's parameters and buffers (names, shapes, bytes) plus `extra` settings."""
    h = hashlib.sha1(repr(extra).encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str | None:
    """sha1 of a file's bytes, or None when it cannot be read (the decoder reports why)."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class TowerStore:
    """Entries {name: tensor} by key, for one tower fingerprint. `hits` / `misses` count lookups
    (tests and the run summary read them)."""

    def __init__(self, root: str | Path, namespace: str, fingerprint: str):
        self.dir = Path(root) / f"{namespace}-{fingerprint}"
        self.index: dict[str, tuple[int, int]] = {}
        self.shards: list[dict] = []
        self.hits = self.misses = 0
        for path in sorted(self.dir.glob("shard-*.pt"), key=lambda p: int(p.stem.split("-")[1])):
            shard = torch.load(path, weights_only=True)
            self._add_shard(shard)

    def _add_shard(self, shard: dict) -> None:
        n = len(self.shards)
        self.shards.append(shard)
        for i, key in enumerate(shard["keys"]):
            self.index[key] = (n, i)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        loc = self.index.get(key)
        if loc is None:
            self.misses += 1
            return None
        self.hits += 1
        shard = self.shards[loc[0]]
        return {name: v[loc[1]] for name, v in shard["values"].items()}

    def put(self, keys: list[str], values: dict[str, torch.Tensor]) -> None:
        """Write one new shard with these entries (values stacked along dim 0, one row per key)."""
        if not keys:
            return
        shard = {"keys": list(keys), "values": {k: v.contiguous().clone() for k, v in values.items()}}
        path = self.dir / f"shard-{len(self.shards)}.pt"
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            torch.save(shard, tmp)
            tmp.replace(path)
        except OSError as e:  # a read-only dataset folder, a full disk: the run goes on without the store
            tqdm.write(f"warning: cannot write the tower store {self.dir} ({e}); this run's tower outputs are not "
                       "kept: pass a writable --cache-dir")
            tmp.unlink(missing_ok=True)
        self._add_shard(shard)
