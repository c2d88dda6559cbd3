"""`moon-features report`: one page gathering a lab run's figures.

Reads what the run folder holds (exchange_rate.json, scaling.json, the points) and writes
`report.md` plus `report.html` (same content, PNGs beside it): recall@K, AUC / GAUC with and
without embeddings, cold-item lift, the exchange rate, the scaling curves, and serving latency
from a serving / online-lookup bench JSON (`bench/serving.py --json`, `bench/online_lookup.py
--json`) found in the run folder (`serving*.json`, `*lookup*.json`) or passed by path. Sections
whose inputs are missing say so instead of failing.
"""
from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")  # files only: the lab runs headless
import matplotlib.pyplot as plt  # noqa: E402

from .exchange_rate import load_exchange_rate, metric_names
from .points import LabRun, read_json
from .scaling import SWEEP_INFO, load_scaling
from .session import BASELINES, VARIANTS


class Page:
    """Blocks rendered to both Markdown and HTML."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def ul(self, items: list[str]):
        if items:
            self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list]):
        if rows:
            self.blocks.append(("table", header, rows))

    def img(self, path: str, alt: str):
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "ul":
                out += [f"- {i}" for i in b[1]] + [""]
            elif b[0] == "table":
                out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(str(c) for c in r) + " |" for r in b[2]] + [""]
            elif b[0] == "img":
                out += [f"![{b[2]}]({b[1]})", ""]
        return "\n".join(out)

    def html(self, title: str) -> str:
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
               "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
               "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px}"
               "img{max-width:100%}code{background:#f4f4f4}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b[1]) + "</ul>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in b[1]) + "</tr>"
                           + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
                           + "</table>")
            elif b[0] == "img":
                out.append(f"<p><img src='{e(b[1])}' alt='{e(b[2])}'></p>")
        return "\n".join(out + ["</body></html>"])


def _f(v, d: int = 4) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.{d}f}"


# -- figures made by the report ------------------------------------------------------------------
def _plot_recall(variants: list[dict], ks: list[int], path: Path) -> Path:
    kinds = ("image_search", "text_search", "near_duplicate")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, kind in zip(axes, kinds):
        for r in variants:
            vals = [r["metrics"].get(f"{kind}@{k}", np.nan) for k in ks]
            ax.plot(ks, vals, "o-", label=r["key"])
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K")
        ax.set_title(f"{kind} recall@K", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_ctr(rows: list[tuple[str, dict]], path: Path) -> Path:
    metrics = ("auc", "gauc", "cold_auc")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    w = 0.8 / len(rows)
    for i, (name, d) in enumerate(rows):
        bars = ax.bar(np.arange(len(metrics)) + i * w, [d.get(m, np.nan) for m in metrics], w, label=name)
        ax.bar_label(bars, fmt="%.4f", fontsize=7)
    ax.set_xticks(np.arange(len(metrics)) + w * (len(rows) - 1) / 2, ["test AUC", "test GAUC", "cold-item AUC"])
    vals = [d.get(m, np.nan) for _, d in rows for m in metrics]
    lo = np.nanmin(vals) if np.isfinite(vals).any() else 0.5
    ax.set_ylim(max(0.0, lo - 0.05), None)
    ax.set_title("DIN with and without item embeddings (same run, same recipe)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- serving -------------------------------------------------------------------------------------
def find_latency_files(run_dir: Path, given: list[str | Path] | None = None) -> list[Path]:
    files = [Path(p) for p in (given or [])]
    for pattern in ("serving*.json", "*lookup*.json", "latency*.json"):
        files += sorted(run_dir.glob(pattern))
    return list(dict.fromkeys(files))


def latency_rows(obj, prefix: str = "") -> list[list]:
    """Every dict with a p50_ms in a bench JSON, as [where, n, p50, p99, mean, throughput] rows."""
    rows = []
    if isinstance(obj, dict):
        if "p50_ms" in obj:
            rows.append([prefix or "-", obj.get("n", "-"), _f(obj.get("p50_ms"), 2), _f(obj.get("p99_ms"), 2),
                         _f(obj.get("mean_ms"), 2),
                         _f(obj.get("throughput_rps"), 1) if "throughput_rps" in obj else "-"])
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                rows += latency_rows(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            tag = f"concurrency {v['concurrency']}" if isinstance(v, dict) and "concurrency" in v else str(i)
            rows += latency_rows(v, f"{prefix}/{tag}")
    return rows


# -- the page ------------------------------------------------------------------------------------
@dataclass
class _Report:
    """What every section of the report reads and writes: the page, and what the run lacks."""
    run_dir: Path
    out_dir: Path
    preset: dict
    page: Page = field(default_factory=Page)
    missing: list[str] = field(default_factory=list)

    def rel(self, p: Path) -> str:
        """A figure's path as the report links it: relative to the report's folder when inside it."""
        try:
            return str(Path(p).resolve().relative_to(self.out_dir.resolve()))
        except ValueError:
            return str(Path(p).resolve())


def build_report(run_dir, serving: list[str | Path] | None = None, out: str | Path | None = None) -> Path:
    """Write `<out or run_dir>/report.md` and `report.html`; returns the Markdown path."""
    run_dir = Path(run_dir)
    out_dir = Path(out) if out else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    run = LabRun(run_dir)
    meta = run.meta()
    r = _Report(run_dir, out_dir, meta.get("preset", {}))
    # training order: stage-1 snapshots, then stage-2 ones; the last at the preset's dim is "final"
    variants = sorted(run.points(VARIANTS), key=lambda r: (r["variant"].get("epoch", 0), r["metrics"].get("dim", 0)))
    baselines = {b["key"]: b for b in run.points(BASELINES)}

    r.page.h(1, f"MOON lab report: {run_dir.name}")
    r.page.p(f"Preset `{r.preset.get('name', '?')}` on {meta.get('data', '?')} ({meta.get('source', '?')}); "
             f"{meta.get('threads', '?')} thread(s); report written {time.strftime('%Y-%m-%d %H:%M')}.")
    r.page.ul([f"`{c}`" for c in meta.get("commands", [])])
    at_dim = _recall_section(r, variants)
    _ctr_section(r, at_dim, baselines)
    _exchange_rate_section(r, load_exchange_rate(run_dir))
    _scaling_section(r, load_scaling(run_dir))
    _serving_section(r, serving)

    r.page.h(2, "Missing from this run")
    r.page.ul(r.missing or ["nothing: every section has data"])
    md = out_dir / "report.md"
    md.write_text(r.page.markdown())
    (out_dir / "report.html").write_text(r.page.html(f"MOON lab report: {run_dir.name}"))
    print(f"report: {md} and {out_dir / 'report.html'} ({len(r.missing)} section(s) incomplete)")
    return md


def _recall_section(r: _Report, variants: list[dict]) -> list[dict]:
    """recall@K of every encoder variant; returns the variants at the preset's dimension."""
    r.page.h(2, "Intermediate metrics: recall@K")
    dim = r.preset.get("dim")
    at_dim = [v for v in variants if v["metrics"].get("dim") == dim] or variants
    if not at_dim:
        r.missing.append("recall@K: no encoder variant finished (run `moon-features lab exchange-rate`)")
        return at_dim
    ks = r.preset.get("ks") or [1, 10]
    fig = _plot_recall(at_dim, ks, r.out_dir / "report_recall_at_k.png")
    r.page.p("Held-out (CTR test period) co-engagement pairs; query = image-only (image search) or text-only "
             "(text-to-item) embedding of item A, gallery = multimodal embeddings of the catalogue; "
             "near-duplicate = an augmented copy of an image must find its own item.")
    r.page.img(r.rel(fig), "recall at K")
    k = r.preset.get("metric_k", 10)
    r.page.table(["variant", "dim"] + metric_names(k),
                 [[v["key"], v["metrics"]["dim"]] + [_f(v["metrics"].get(m), 3) for m in metric_names(k)]
                  for v in variants])
    return at_dim


def _ctr_section(r: _Report, at_dim: list[dict], baselines: dict) -> None:
    """AUC / GAUC with and without embeddings, and the cold-item lift."""
    r.page.h(2, "Downstream CTR: DIN with and without embeddings")
    recipe = r.preset.get("recipe") or {}
    L = recipe.get("max_len", 50)
    base = baselines.get(f"din_ids_L{L}")
    with_ds = [v for v in at_dim if "downstream" in v]
    if not (base and with_ds):
        r.missing.append("AUC / GAUC lift: the ids-only baseline or a DIN + embeddings variant is missing")
        return
    final = with_ds[-1]
    best = max(with_ds, key=lambda v: v["downstream"]["auc"])
    rows = [("DIN ids-only", base["downstream"]), (f"DIN + {final['key']} (final)", final["downstream"])]
    if best["key"] != final["key"]:
        rows.append((f"DIN + {best['key']} (best AUC at dim {r.preset.get('dim')})", best["downstream"]))
    fig = _plot_ctr(rows, r.out_dir / "report_ctr_lift.png")
    r.page.img(r.rel(fig), "AUC and GAUC with and without embeddings")
    b = base["downstream"]
    r.page.table(["model", "test AUC", "GAUC", "cold-item AUC", "AUC lift", "cold-item AUC lift", "best epoch"],
                 [[n, _f(d["auc"]), _f(d["gauc"]), _f(d["cold_auc"]), f"{d['auc'] - b['auc']:+.4f}",
                   f"{d['cold_auc'] - b['cold_auc']:+.4f}", d.get("best_epoch")] for n, d in rows])
    r.page.p(f"Fixed recipe: DIN embed_dim {recipe.get('embed_dim')}, embeddings projected to "
             f"{recipe.get('moon_proj_dim')}, Adam lr {recipe.get('lr')}, batch {recipe.get('batch_size')}, "
             f"{recipe.get('epochs')} epoch(s), test at the best validation-AUC epoch, L = {L}; split A "
             f"(global time 80/10/10), {b.get('n_cold', '?')} test rows of cold items.")


def _exchange_rate_section(r: _Report, ex: dict | None) -> None:
    r.page.h(2, "Exchange rate of the intermediate metrics")
    if not ex:
        r.missing.append("exchange rate: exchange_rate.json missing (run `moon-features lab exchange-rate`)")
        return
    rates = ex["rates"]
    r.page.p("Verdict: " + ex["verdict"] + ".")
    r.page.table(["metric", "range over variants", "AUC points per 0.1", "R²", "Spearman AUC (p)", "Spearman GAUC",
                  "Spearman cold AUC"],
                 [[m, " - ".join(_f(v, 3) for v in rates[m]["range"]),
                   f"{rates[m]['auc']['per_step'] * 100:+.3f}", _f(rates[m]["auc"]["r2"], 2),
                   f"{_f(rates[m]['auc']['spearman'], 2)} ({_f(rates[m]['auc']['spearman_p'], 3)})",
                   _f(rates[m]["gauc"]["spearman"], 2), _f(rates[m]["cold_auc"]["spearman"], 2)]
                  for m in ex["ranking"]])
    for name in ex["figures"]:
        r.page.img(r.rel(r.run_dir / name), name)


def _scaling_section(r: _Report, sc: dict | None) -> None:
    r.page.h(2, "Scaling")
    if not (sc and sc.get("sweeps")):
        r.missing.append("scaling: scaling.json missing (run `moon-features lab scaling`)")
        return
    for name, sw in sc["sweeps"].items():
        r.page.h(3, SWEEP_INFO[name][0])
        r.page.ul([f["text"] for f in sw["fits"].values()])
        r.page.table(["point", "x", "wall seconds"] + sw["fit_metrics"],
                     [[("ids-only " if p.get("model") == "din_ids" else "") + p["key"], p["x"],
                       f"{p['seconds']:.0f}"] + [_f(p["y"].get(m)) for m in sw["fit_metrics"]]
                      for p in sw["points"] + sw.get("baseline_points", [])])
        r.page.img(r.rel(r.run_dir / sw["figure"]), f"scaling {name}")
    for name in SWEEP_INFO:
        if name not in sc["sweeps"]:
            r.missing.append(f"scaling sweep {name!r} not run")


def _serving_section(r: _Report, serving: list[str | Path] | None) -> None:
    r.page.h(2, "Serving latency")
    shown = False
    for f in find_latency_files(r.run_dir, serving):
        if not f.exists():
            r.missing.append(f"serving latency: {f} not found")
            continue
        rows = latency_rows(json.loads(f.read_text()))
        if rows:
            r.page.p(f"From `{f}`:")
            r.page.table(["measurement", "n", "p50 ms", "p99 ms", "mean ms", "req/s"], rows)
            setup = read_json(f).get("setup") if isinstance(read_json(f), dict) else None
            if setup:
                r.page.p("Setup: " + ", ".join(f"{k}={v}" for k, v in setup.items() if not isinstance(v, (list, dict))))
            shown = True
    if not shown:
        r.page.p("No serving bench JSON in the run folder; pass one with `--serving FILE` "
                 "(e.g. `python bench/serving.py --json <run>/serving.json`).")
        r.missing.append("serving latency: no bench JSON")
