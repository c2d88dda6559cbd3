"""The tf.data pipeline yields exactly CTRData's batches (rows, order, MOON gather), from numpy,
CTRData, Arrow or Feast."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.tf
ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
ctf.configure_threads(1)

from ctr_models import CTRData, DataError  # noqa: E402
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs  # noqa: E402
from ctr_models.tf.features import to_features  # noqa: E402


@pytest.fixture(scope="module")
def data():
    inputs = tiny_inputs(moon_dim=6, dense=("price",))
    arrays, table = synthetic_ctr_arrays(inputs, 1000, seed=2, moon_dim=6)
    arrays["item_id"][:3] = 10**6  # an id beyond the MOON table gathers the zero row
    return CTRData(arrays, inputs, moon_table=table)


def assert_same(tf_batch, ctr_batch):
    expected = to_features(ctr_batch)
    assert set(tf_batch) == set(expected)
    for k, v in expected.items():
        got = tf_batch[k].numpy()
        assert got.dtype == v.dtype, k
        np.testing.assert_array_equal(got, v, err_msg=k)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_equal_ctrdata_batches(data, shuffle):
    ds = ctf.TFCTRDataset(data)
    got = list(ds.dataset(96, shuffle=shuffle, seed=3, epoch=2))
    expected = list(data.batches(96, shuffle=shuffle, seed=3, epoch=2))
    assert len(got) == len(expected) == data.num_batches(96)
    for g, e in zip(got, expected):
        assert_same(g, e)
    assert np.all(got[0]["item_emb"].numpy()[:3] == 0) or shuffle


def test_arrow_source_gives_the_same_batches(data):
    table = pa.table({k: (pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1]) if v.ndim == 2 else v)
                      for k, v in data.arrays.items()})
    ds = ctf.TFCTRDataset(table, data.inputs, moon_table=data.moon_table.numpy())
    for g, e in zip(ds.dataset(250), data.batches(250)):
        assert_same(g, e)
    ragged = table.set_column(table.column_names.index("hist_cat"), "hist_cat",
                              pa.array([[1]] + [[1, 2]] * (len(data) - 1), pa.list_(pa.int64())))
    with pytest.raises(DataError, match="pad the sequences"):
        ctf.TFCTRDataset(ragged, data.inputs, moon_table=data.moon_table.numpy())


def test_bad_arrays_raise_the_same_named_errors_as_ctrdata(data):
    arrays = {k: v for k, v in data.arrays.items() if k != "hist_len"}
    with pytest.raises(DataError, match="hist_len"):
        ctf.TFCTRDataset(arrays, data.inputs, moon_table=data.moon_table.numpy())
    with pytest.raises(DataError, match="moon_table"):
        ctf.TFCTRDataset(dict(data.arrays), data.inputs)


@pytest.mark.slow  # building the Feast repo fixture dominates (~20 s); the pipeline part is ~1 s
def test_feast_training_dataset_equals_training_data(feature_repo, shop):
    from moon_features.store.sources import entity_rows
    from moon_features.training.retrieval import training_data
    from moon_features.training.tf_data import training_dataset

    _, spec, store = feature_repo
    rows = entity_rows(shop).sample(300, random_state=1)
    expected = training_data(store, spec, rows, use_moon=False)
    ds = training_dataset(store, spec, rows, use_moon=False)
    assert len(ds) == len(rows)
    for g, e in zip(ds.dataset(128, shuffle=True, seed=0, epoch=1), expected.batches(128, shuffle=True, seed=0, epoch=1)):
        assert_same(g, e)
