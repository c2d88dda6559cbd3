"""The tf.data input pipeline: the same rows and the same batches as CTRData, as TF tensors.

The columns live in TF variables (one copy, captured by handle rather than serialised into every
dataset graph); a batch is a vectorised tf.gather of row indices, and with MOON the item_emb /
hist_emb vectors are gathered from the constant MOON table inside the pipeline, so the dataset
holds each item's vector once. No per-row Python: the per-epoch order is one numpy permutation,
the same one CTRData.batches draws (np.random.default_rng([seed, epoch]), sorted within each
batch), so both backends see identical mini-batches.

Sources: a CTRData, a dict of numpy arrays (validated by CTRData) or an Arrow table whose
columns carry the CTRData names (sequence columns as fixed-width lists).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import tensorflow as tf

from ..data import CTRData, DataError
from ..inputs import ModelInputs
from .runtime import configured_threads


def arrays_from_arrow(table: pa.Table, inputs: ModelInputs) -> dict[str, np.ndarray]:
    """Columns -> numpy (zero-copy where Arrow allows); list columns must be padded to one width."""
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            lengths = np.unique(pa.compute.list_value_length(col).to_numpy(zero_copy_only=False))
            if len(lengths) > 1:
                raise DataError(f"column {name!r} holds lists of lengths {lengths[:5].tolist()}...; pad the "
                                f"sequences to one width (<= max_len {inputs.max_len}) first, e.g. with "
                                "moon_features.training.retrieval.pad_sequences")
            width = int(lengths[0]) if len(lengths) else 0
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), width)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


class TFCTRDataset:
    """CTRData's rows as tf.data: `dataset(batch_size, shuffle, seed, epoch)` -> batches of dicts."""

    def __init__(self, source, inputs: ModelInputs | None = None, moon_table: np.ndarray | None = None,
                 item_field: str = "item_id"):
        if isinstance(source, CTRData):
            data = source
        else:
            if inputs is None:
                raise DataError("TFCTRDataset needs `inputs` unless the source is a CTRData")
            arrays = arrays_from_arrow(source, inputs) if isinstance(source, pa.Table) else source
            data = CTRData(arrays, inputs, moon_table=moon_table, item_field=item_field)  # same validation
        self.inputs, self.n = data.inputs, len(data)
        keep = ([f.name for f in data.inputs.sparse] + list(data.inputs.dense)
                + [s.name for s in data.inputs.sequences] + ["hist_len"] + (["label"] if "label" in data.arrays else []))
        self.arrays = {k: data.arrays[k] for k in keep}
        self.has_label = "label" in self.arrays
        self.item_field, self.hist_item_field = data.item_field, data.hist_item_field
        self.moon_table = data.moon_table.numpy() if data.moon_table is not None else None
        self._columns = None

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["label"]

    def column(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def num_batches(self, batch_size: int) -> int:
        return (self.n + batch_size - 1) // batch_size

    def _vars(self):
        if self._columns is None:  # created lazily, on the thread that first builds a dataset
            self._columns = {k: tf.Variable(v, trainable=False, name=k) for k, v in self.arrays.items()}
            self._moon = (tf.constant(self.moon_table) if self.moon_table is not None else None)
        return self._columns

    def order(self, batch_size: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
        """Row indices in batch order: CTRData.batches' order exactly."""
        if not shuffle:
            return np.arange(self.n, dtype=np.int64)
        order = np.random.default_rng([seed, epoch]).permutation(self.n)
        full = self.n // batch_size * batch_size
        head = np.sort(order[:full].reshape(-1, batch_size), axis=1).ravel()
        return np.concatenate([head, np.sort(order[full:])]).astype(np.int64)

    def gather(self, idx) -> dict[str, tf.Tensor]:
        """Row indices [B] -> the feature dict of those rows (MOON vectors gathered from the table)."""
        cols = self._vars()
        out = {k: tf.gather(v, idx) for k, v in cols.items()}
        if self._moon is not None:
            v = tf.shape(self._moon, out_type=tf.int64)[0]

            def moon(ids):  # unknown item -> zero row, as CTRData._gather
                return tf.gather(self._moon, tf.where((ids >= 0) & (ids < v), ids, tf.zeros_like(ids)))

            out["item_emb"] = moon(out[self.item_field])
            out["hist_emb"] = moon(out[self.hist_item_field])
        return out

    def dataset(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0) -> tf.data.Dataset:
        """Batched, gathered in parallel, prefetched; deterministic order."""
        self._vars()
        idx = tf.data.Dataset.from_tensor_slices(self.order(batch_size, shuffle, seed, epoch))
        ds = (idx.batch(batch_size)
              .map(self.gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .prefetch(tf.data.AUTOTUNE))
        if configured_threads():  # tf.data's own pool ignores the op thread settings: bound it too
            options = tf.data.Options()
            options.threading.private_threadpool_size = configured_threads()
            ds = ds.with_options(options)
        return ds

    def subset(self, idx: np.ndarray) -> "TFCTRDataset":
        out = object.__new__(TFCTRDataset)
        out.__dict__.update(self.__dict__)
        out.arrays = {k: v[idx] for k, v in self.arrays.items()}
        out.n = len(out.arrays["hist_len"])
        out._columns = None
        return out
