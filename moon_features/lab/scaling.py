"""`moon-features lab scaling`: how the embeddings and the CTR model scale, and what it costs.

Three sweeps, each point a JSON file written when it finishes (an interrupted sweep resumes):

(a) examples   encoder post-training examples: the chain snapshots after 1, 2, 4 ... stage-2
               epochs (x = co-engagement pairs seen); y = intermediate metrics and DIN AUC.
               These are the exchange-rate variants at the default dim, computed once.
(b) negatives  negatives per stage-2 query: one encoder run per memory-queue size; x = in-batch
               + same-category hard negatives + queue; y = intermediate metrics (and DIN AUC with
               `negatives_downstream`). The chain's own queue size reuses the chain's final model.
(c) seq_len    behaviour-sequence length L of the CTR model; DIN + embeddings of the final
               encoder and DIN ids-only at every L; y = test AUC, GAUC, logloss.

For every sweep and metric a log-log least-squares line y = a * x^b is fitted; it is called a
power law only with >= 3 points and R^2 >= 0.9. Every point records its wall / CPU seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import matplotlib

matplotlib.use("Agg")  # files only: the lab runs headless
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from .encoders import chain_schedule, negatives_per_query, train_queue_variant
from .fitting import describe_power_law, power_law_fit
from .points import read_json, write_json
from .presets import LabError
from .session import LabSession

SWEEPS = ("examples", "negatives", "seq_len")
SWEEP_INFO = {
    "examples": ("encoder post-training examples (pairs seen)", "posttrain_examples"),
    "negatives": ("negatives per query", "negatives"),
    "seq_len": ("behaviour-sequence length L", "max_len"),
}


def _point_cost(r: dict) -> float:
    """What a point cost in wall seconds: the encoder training it stands on (chain snapshots: the
    chain up to that snapshot), its metrics and its DIN run; a bare DIN point: its run."""
    return float(sum(r["cost"].values())) if r.get("cost") else float(r.get("seconds", 0.0))


def _row(x: float, r: dict, extra: dict | None = None) -> dict:
    y = dict(r.get("metrics", {}))
    y.update({k: v for k, v in r.get("downstream", {}).items() if k in ("auc", "gauc", "logloss", "cold_auc")})
    return {"x": x, "key": r["key"], "y": y, "seconds": round(_point_cost(r), 1),
            "cpu_seconds": r.get("cpu_seconds"), **(extra or {})}


def sweep_examples(s: LabSession, progress: bool) -> dict:
    variants = [v for v in s.variants() if v["dim"] == s.preset.dim]
    rows = []
    for v in tqdm(variants, desc="scaling: examples", unit="point", disable=not progress):
        r = s.variant_point(v)
        if v["posttrain"]:
            rows.append(_row(v["posttrain_examples"], r))
        else:
            rows.append(_row(0, r, {"reference": "pretraining only"}))
    k = s.preset.metric_k
    return {"points": rows, "fit_metrics": [f"image_search@{k}", f"text_search@{k}", "alignment_loss", "auc"]}


def sweep_negatives(s: LabSession, progress: bool) -> dict:
    schedule = chain_schedule(s.preset, s.threads)
    final = s.final_snapshot()
    chain_complete = final.epoch == schedule.pretrain_epochs + schedule.posttrain_epochs
    rows = []
    for q in tqdm(s.preset.queue_sizes, desc="scaling: negatives", unit="point", disable=not progress):
        x = negatives_per_query(schedule, q)
        if q == schedule.queue_size and chain_complete:  # the chain itself is this point
            v = next(v for v in s.variants() if v["snapshot"] == final.name and v["dim"] == s.preset.dim)
            rows.append(_row(x, s.variant_point(v), {"queue_size": q, "reused": v["key"]}))
            continue
        r = s.encoder_point("scaling_negatives", f"queue{q}",
                            lambda q=q: train_queue_variant(s.run.root, s.preset, s.encoder_dataset, q, s.threads,
                                                            s.progress),
                            s.preset.dim, {"queue_size": q, "negatives": x},
                            downstream=s.preset.negatives_downstream)
        rows.append(_row(x, r, {"queue_size": q}))
    k = s.preset.metric_k
    fit = [f"image_search@{k}", f"text_search@{k}", "alignment_loss"]
    fit += ["auc"] if s.preset.negatives_downstream else []
    return {"points": rows, "fit_metrics": fit}


def sweep_seq_len(s: LabSession, progress: bool) -> dict:
    final = s.final_snapshot()
    v_final = next(v for v in s.variants() if v["snapshot"] == final.name and v["dim"] == s.preset.dim)
    rows, base_rows = [], []
    for L in tqdm(s.preset.seq_lens, desc="scaling: sequence length", unit="point", disable=not progress):
        if L == s.L:
            r = s.variant_point(v_final)
        else:
            r = s.encoder_point("scaling_seq_len", f"moon_L{L}", final.path, s.preset.dim,
                                {"snapshot": final.name, "max_len": L}, max_len=L)
        row = _row(L, r, {"model": "din_moon"})
        row["seconds"] = r.get("downstream", {}).get("ctr_seconds", row["seconds"])  # the CTR run is the cost
        rows.append(row)
        if s.preset.seq_len_baseline:
            b = s.baseline(L)
            brow = _row(L, b, {"model": "din_ids"})
            brow["seconds"] = b["downstream"]["ctr_seconds"]
            base_rows.append(brow)
    return {"points": rows, "baseline_points": base_rows, "fit_metrics": ["auc", "gauc", "logloss"]}


def fit_sweep(name: str, sweep: dict) -> dict:
    fits = {}
    label = SWEEP_INFO[name][0]
    for series, rows in (("moon", sweep["points"]), ("ids", sweep.get("baseline_points", []))):
        rows = [r for r in rows if r["x"] > 0]
        for m in sweep["fit_metrics"]:
            ys = [r["y"].get(m, np.nan) for r in rows]
            if not rows or not np.isfinite(ys).any():
                continue
            fit = power_law_fit([r["x"] for r in rows], ys)
            fit["text"] = describe_power_law(fit, m if series == "moon" else f"{m} (ids-only)", label)
            fits[f"{series}:{m}"] = fit
    return fits


def _log_x(ax, xs) -> None:
    """Log x axis ticked at the sweep's own x values (default log ticks overlap on short ranges)."""
    ax.set_xscale("log")
    xs = sorted({x for x in xs if x > 0})
    if xs:
        ax.set_xticks(xs, [f"{x:g}" for x in xs], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())


def plot_sweep(name: str, sweep: dict, fits: dict, out_dir: Path) -> Path:
    all_x = [r["x"] for r in sweep["points"] + sweep.get("baseline_points", [])]

    metrics = sweep["fit_metrics"]
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(3.6 * (len(metrics) + 1), 3.4), squeeze=False)
    label = SWEEP_INFO[name][0]
    for ax, m in zip(axes[0], metrics):
        for series, rows, colour in (("moon", sweep["points"], "tab:orange"),
                                     ("ids", sweep.get("baseline_points", []), "tab:blue")):
            rows = [r for r in rows if r["x"] > 0 and np.isfinite(r["y"].get(m, np.nan))]
            if not rows:
                continue
            x = np.array([r["x"] for r in rows], float)
            y = np.array([r["y"][m] for r in rows], float)
            tag = "DIN + embeddings" if name == "seq_len" and series == "moon" else (
                "DIN ids-only" if series == "ids" else "encoder")
            ax.plot(x, y, "o", color=colour, label=tag)
            f = fits.get(f"{series}:{m}")
            if f and np.isfinite(f["exponent"]) and f["n"] >= 2:
                xs = np.geomspace(x.min(), x.max(), 20)
                ax.plot(xs, f["prefactor"] * xs ** f["exponent"], "-" if f["holds"] else ":", color=colour, lw=1,
                        label=f"x^{f['exponent']:+.3f}, R² {f['r2']:.2f}" + ("" if f["holds"] else " (no power law)"))
        ref = [r for r in sweep["points"] if r["x"] == 0 and np.isfinite(r["y"].get(m, np.nan))]
        for r in ref:
            ax.axhline(r["y"][m], color="grey", ls=":", lw=1, label=f"{r['key']}: {r.get('reference', 'x = 0')}")
        _log_x(ax, all_x)
        ys = [r["y"].get(m, np.nan) for r in sweep["points"] if r["x"] > 0]
        if ys and np.nanmin(ys) > 0 and np.nanmax(ys) / np.nanmin(ys) > 3:  # a short y range reads better linear
            ax.set_yscale("log")
        ax.set_xlabel(label, fontsize=8)
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    ax = axes[0][-1]
    for series, rows, colour in (("moon", sweep["points"], "tab:orange"),
                                 ("ids", sweep.get("baseline_points", []), "tab:blue")):
        rows = [r for r in rows if r["x"] > 0]
        if rows:
            ax.plot([r["x"] for r in rows], [r["seconds"] for r in rows], "s-", color=colour,
                    label="DIN ids-only" if series == "ids" else "point")
    _log_x(ax, all_x)
    ax.set_xlabel(label, fontsize=8)
    ax.set_ylabel("wall seconds per point")
    ax.set_title("cost", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
    fig.suptitle(f"Scaling: {label}", fontsize=10)
    fig.tight_layout()
    p = out_dir / f"scaling_{name}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def markdown(result: dict, out_dir: Path) -> str:
    lines = ["# Scaling", ""]
    for name, sw in result["sweeps"].items():
        label = SWEEP_INFO[name][0]
        metrics = sw["fit_metrics"]
        lines += [f"## {label}", "", "| point | x | " + " | ".join(metrics) + " | wall s | CPU s |",
                  "|---|---|" + "---|" * (len(metrics) + 2)]
        for series, rows in (("", sw["points"]), ("ids-only ", sw.get("baseline_points", []))):
            for r in rows:
                cells = " | ".join("-" if not np.isfinite(r["y"].get(m, np.nan)) else f"{r['y'][m]:.4f}"
                                   for m in metrics)
                lines.append(f"| {series}{r['key']} | {r['x']} | {cells} | {r['seconds']:.0f} | "
                             f"{r.get('cpu_seconds') or 0:.0f} |")
        lines += [""] + [f"- {f['text']}" for f in sw["fits"].values()] + [""]
        lines += [f"![scaling_{name}]({sw['figure']})", ""]
    lines.append("Wall seconds of an encoder point include the encoder training it stands on (chain snapshots: "
                 "training up to that snapshot); seq-len points count the DIN run only.")
    return "\n".join(lines) + "\n"


def run_scaling(run_dir, preset="tiny", data=None, threads: int = 1, progress: bool = True,
                sweeps=SWEEPS, command: str | None = None, session: LabSession | None = None) -> dict:
    s = session or LabSession(run_dir, preset, data, threads, progress, command)
    unknown = set(sweeps) - set(SWEEPS)
    if unknown:
        raise LabError(f"unknown sweeps {sorted(unknown)}; choose from {list(SWEEPS)}")
    fns = {"examples": sweep_examples, "negatives": sweep_negatives, "seq_len": sweep_seq_len}
    out_dir = s.run.root
    old = load_scaling(out_dir) or {"sweeps": {}}
    result = {"sweeps": dict(old["sweeps"])}
    for name in SWEEPS:
        if name not in sweeps:
            continue
        sw = fns[name](s, progress)
        sw["fits"] = fit_sweep(name, sw)
        sw["figure"] = plot_sweep(name, sw, sw["fits"], out_dir).name
        result["sweeps"][name] = sw
        for f in sw["fits"].values():
            print(f"scaling {name}: {f['text']}")
        write_json(out_dir / "scaling.json", result)
    (out_dir / "scaling.md").write_text(markdown(result, out_dir))
    print(f"scaling: {', '.join(result['sweeps'])} -> {out_dir / 'scaling.md'}")
    return result


def load_scaling(run_dir) -> dict | None:
    p = Path(run_dir) / "scaling.json"
    return read_json(p) if p.exists() else None
