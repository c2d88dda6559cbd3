"""Training-curve plots: train loss and validation AUC per epoch, one line per run."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: benches and CI have no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(histories: dict[str, list[dict]], path: str | Path,
                         metrics: tuple[str, ...] = ("train_loss", "val_auc", "val_logloss")) -> Path:
    """histories: run label -> FitResult.history. Writes a PNG with one panel per metric."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for label, hist in histories.items():
            pts = [(r["epoch"], r[m]) for r in hist if m in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
