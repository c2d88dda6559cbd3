"""The MOON lab on a 200-item synthetic shop: exchange rate, scaling, resume, report, CLI.

One tiny lab run (encoder `demo` preset shrunk, one stage-1 epoch and two small stage-2 epochs;
DIN one epoch) is shared by the tests of this module; no test asserts a timing.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from moon_features.lab.fitting import least_squares, power_law_fit, spearman
from moon_features.lab.presets import get_lab_preset


# -- statistics -----------------------------------------------------------------------------------
def test_power_law_fit_recovers_exponent_and_refuses_weak_evidence():
    x = np.array([1e3, 2e3, 4e3, 8e3, 16e3])
    fit = power_law_fit(x, 3.0 * x ** -0.25)
    assert fit["holds"] and abs(fit["exponent"] + 0.25) < 1e-9 and abs(fit["prefactor"] - 3.0) < 1e-6
    assert fit["r2"] > 0.999
    assert not power_law_fit(x[:2], 3.0 * x[:2] ** -0.25)["holds"]          # two points prove nothing
    zigzag = np.array([1.0, 5.0, 1.2, 4.0, 1.1])
    assert not power_law_fit(x, zigzag)["holds"]                              # low R^2: no power law
    assert power_law_fit([0, 1, 2], [1, 1, 1])["n"] == 2                     # x = 0 cannot be on a log axis


def test_slope_and_rank_correlation():
    ls = least_squares([0, 1, 2, 3], [1, 3, 5, 7])
    assert abs(ls["slope"] - 2) < 1e-12 and abs(ls["r2"] - 1) < 1e-12
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100])["rho"] == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])["rho"] == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])["rho"])


def test_exchange_rate_picks_the_metric_that_predicts_auc():
    from moon_features.lab.exchange_rate import analyse

    rng = np.random.default_rng(0)
    auc = np.linspace(0.70, 0.75, 6)
    records = []
    for i, a in enumerate(auc):
        records.append({"key": f"v{i}", "variant": {}, "downstream": {"auc": a, "gauc": a, "cold_auc": a},
                        "metrics": {"image_search@10": 0.1 + 2 * (a - 0.7),          # tracks AUC exactly
                                    "text_search@10": rng.permutation(6)[i] / 10,     # noise
                                    "near_duplicate@10": 0.9,                         # constant
                                    "alignment_loss": 3.0 - 10 * (a - 0.7)}})         # lower = better, tracks
    out = analyse(records, {"downstream": {"auc": 0.69, "gauc": 0.69, "cold_auc": 0.6}}, 10)
    assert out["best"] in ("image_search@10", "alignment_loss")
    assert out["rates"]["image_search@10"]["auc"]["slope"] == pytest.approx(0.5)
    assert out["rates"]["alignment_loss"]["auc"]["oriented_spearman"] == pytest.approx(1.0)
    assert out["ranking"][-1] == "near_duplicate@10"   # no variation: no evidence
    assert "predicts downstream AUC best" in out["verdict"]
    assert out["lifts"][0]["auc_lift"] == pytest.approx(0.01)


# -- one tiny lab ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(shop_dir, tmp_path_factory):
    from moon_features.lab.exchange_rate import run_exchange_rate
    from moon_features.lab.scaling import run_scaling
    from moon_features.lab.session import LabSession

    preset = get_lab_preset("tiny").with_overrides(seq_lens=(5, 20), queue_sizes=(0,))
    run_dir = tmp_path_factory.mktemp("lab") / "tiny"
    s = LabSession(run_dir, preset, shop_dir, threads=1, progress=False, command="pytest")
    ex = run_exchange_rate(run_dir, session=s, progress=False)
    sc = run_scaling(run_dir, session=s, progress=False)
    return s, ex, sc


def test_encoder_never_sees_the_ctr_test_period_or_cold_items(lab):
    s, _, _ = lab
    L = s.preset.recipe.max_len
    arrays, _ = s.data.ctr(L)
    split = s.data.split(L)
    enc_log, heldout = s.data.encoder_logs(L)
    first_test = arrays["timestamp"][split["test"]].min()
    assert enc_log["event_timestamp"].max() < pd.Timestamp(int(first_test), unit="us", tz="UTC")
    assert not set(enc_log["item_id"]) & set(s.data.cold_item_ids(L).tolist())
    assert len(heldout) and (heldout["event_timestamp"] >= s.data.cutoff(L)).all()
    assert set(split["cold"]) <= set(split["test"]) and len(split["cold"])


def test_exchange_rate_writes_points_json_markdown_and_plots(lab):
    s, ex, _ = lab
    root = s.run.root
    keys = {v["key"] for v in s.variants()}
    assert keys == {"pre1_d32", "post1_d32", "post2_d32", "post2_d16"}
    for k in keys:
        point = json.loads((root / "points/variants" / f"{k}.json").read_text())
        assert {"metrics", "downstream", "seconds", "cpu_seconds", "cost"} <= set(point)
        for m in ("image_search@10", "text_search@10", "near_duplicate@10", "alignment_loss"):
            assert np.isfinite(point["metrics"][m])
        assert 0 <= point["downstream"]["auc"] <= 1
    assert (root / "points/baselines/din_ids_L20.json").exists()
    assert ex["n_variants"] == 4 and ex["best"] in ex["rates"] and ex["verdict"]
    for name in ex["figures"]:
        assert (root / name).stat().st_size > 0
    md = (root / "exchange_rate.md").read_text()
    assert "Verdict" in md and "post2_d16" in md


def test_scaling_sweeps_fit_and_record_cost(lab):
    s, _, sc = lab
    sw = sc["sweeps"]
    assert set(sw) == {"examples", "negatives", "seq_len"}
    assert [p["x"] for p in sw["examples"]["points"]] == [0, 128, 256]   # pairs seen in post-training
    assert [p["x"] for p in sw["seq_len"]["points"]] == [5, 20]
    assert [p["x"] for p in sw["seq_len"]["baseline_points"]] == [5, 20]
    neg = sw["negatives"]["points"]
    assert neg[0]["queue_size"] == 0 and neg[0]["x"] == 31 + 32        # in-batch + hard negatives
    for name, sweep in sw.items():
        assert all(p["seconds"] > 0 for p in sweep["points"])
        assert all(not f["holds"] for f in sweep["fits"].values() if f["n"] < 3)
        assert (s.run.root / sweep["figure"]).exists()


def test_an_interrupted_lab_resumes_and_skips_finished_points(lab, capsys):
    from moon_features.lab.exchange_rate import run_exchange_rate
    from moon_features.lab.session import LabSession

    s, _, _ = lab
    root = s.run.root
    gone = root / "points/variants/post1_d32.json"
    kept = json.loads((root / "points/variants/post2_d32.json").read_text())
    gone.unlink()                                       # as if the lab died during this point
    again = LabSession(root, s.preset, s.data.src, threads=1, progress=True, command="pytest again")
    run_exchange_rate(root, session=again, progress=True)
    out = capsys.readouterr().out
    assert "post2_d32: done earlier, skipped" in out and "retraining" not in out
    assert "[variants] post1_d32:" in out and gone.exists()
    assert json.loads((root / "points/variants/post2_d32.json").read_text())["finished_at"] == kept["finished_at"]
    assert "pytest again" in json.loads((root / "lab.json").read_text())["commands"]


def test_image_search_recall_matches_evaluate_encoder(lab):
    from moon_features.encoder.evaluate import evaluate_encoder

    s, _, _ = lab
    snap = s.final_snapshot()
    pairs = s.heldout_pairs()
    ours = json.loads((s.run.root / f"points/variants/{snap.name}_d32.json").read_text())["metrics"]
    theirs = evaluate_encoder(snap.path, s.data.dataset, pairs, ks=(1, 10), dim=32, baselines=False, progress=False)
    for k in (1, 10):
        assert ours[f"image_search@{k}"] == pytest.approx(theirs["methods"]["moon_encoder"][f"recall@{k}"])
        assert ours[f"near_duplicate@{k}"] == pytest.approx(theirs["methods"]["moon_encoder"][f"near_duplicate@{k}"])


def test_embedding_table_equals_the_embedding_job(lab, tmp_path):
    from moon_features.encoder.embed import embed_catalogue
    from moon_features.data.movielens_ctr import parquet_table
    from moon_features.lab.intermediate import intermediate_metrics

    s, _, _ = lab
    snap = s.final_snapshot()
    _, inputs = s.data.ctr(s.preset.recipe.max_len)
    n_rows = inputs.sparse_field("item_id").vocab_size
    _, table = intermediate_metrics(s.context(), snap.path, 32, (10,), n_rows)
    embed_catalogue(snap.path, s.data.dataset, tmp_path / "e.parquet", version=1, dim=32, progress=False)
    job = parquet_table(tmp_path / "e.parquet", n_rows)
    np.testing.assert_allclose(table, job, atol=1e-5)


def test_report_gathers_figures_and_serving_latency(lab):
    from moon_features.lab.cli import main

    s, _, _ = lab
    root = s.run.root
    (root / "serving_bench.json").write_text(json.dumps({
        "setup": {"candidates": 200, "backend": "redis"},
        "in_process": {"ctr_scorer": {"n": 10, "p50_ms": 3.5, "p99_ms": 9.0, "mean_ms": 4.0}},
        "http": [{"concurrency": 8, "n": 50, "p50_ms": 20.0, "p99_ms": 40.0, "mean_ms": 22.0,
                  "throughput_rps": 300.0}]}))
    assert main(["report", "--run", str(root)]) == 0
    md = (root / "report.md").read_text()
    for section in ("recall@K", "with and without embeddings", "Exchange rate", "Scaling", "Serving latency"):
        assert section in md
    assert "in_process/ctr_scorer" in md and "http/concurrency 8" in md and "300.0" in md
    html = (root / "report.html").read_text()
    import re

    for src in re.findall(r"<img src='([^']+)'", html):
        assert (root / src).exists(), src
    assert "nothing: every section has data" in md


def test_cli_registers_lab_commands_and_reports_user_errors(tmp_path, capsys):
    import argparse

    from moon_features.lab.cli import add_lab_commands, main

    parser = argparse.ArgumentParser()
    add_lab_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", "scaling", "--run", str(tmp_path), "--sweeps", "seq_len", "--seq-lens", "5,10"])
    assert args.lab_command == "scaling" and args.seq_lens == "5,10"
    args = parser.parse_args(["report", "--run", str(tmp_path), "--serving", "a.json"])
    assert args.serving == ["a.json"]
    (tmp_path / "lab.json").write_text(json.dumps({"preset": {"name": "movielens"}}))
    assert main(["lab", "exchange-rate", "--preset", "tiny", "--run", str(tmp_path), "--quiet"]) == 2
    assert "is a lab run of preset 'movielens'" in capsys.readouterr().err
