"""The MOON lab: pick the encoder's intermediate metric by its exchange rate into downstream CTR
gains, and measure scaling in encoder examples, negatives per query and sequence length.

Public API::

    run_exchange_rate(run_dir, preset="tiny", data=None, threads=1) -> dict   (exchange_rate.py)
    run_scaling(run_dir, preset="tiny", data=None, sweeps=("examples", "negatives", "seq_len")) -> dict
    build_report(run_dir, serving=None, out=None) -> Path                      (report.py)
    LabSession, LabPreset, CTRRecipe, PRESETS, get_lab_preset
    least_squares, spearman, power_law_fit                                     (fitting.py)
    add_lab_commands(subparsers)                                               (cli.py)
"""
from .presets import PRESETS, CTRRecipe, LabError, LabPreset, get_lab_preset

__all__ = ["run_exchange_rate", "run_scaling", "build_report", "LabSession", "LabPreset", "CTRRecipe", "PRESETS",
           "get_lab_preset", "LabError", "least_squares", "spearman", "power_law_fit", "add_lab_commands"]


def __getattr__(name):  # the heavy modules (torch, encoder, scipy) load on first use
    if name in ("least_squares", "spearman", "power_law_fit"):
        from . import fitting
        return getattr(fitting, name)
    if name == "run_exchange_rate":
        from .exchange_rate import run_exchange_rate
        return run_exchange_rate
    if name == "run_scaling":
        from .scaling import run_scaling
        return run_scaling
    if name == "build_report":
        from .report import build_report
        return build_report
    if name == "LabSession":
        from .session import LabSession
        return LabSession
    if name == "add_lab_commands":
        from .cli import add_lab_commands
        return add_lab_commands
    raise AttributeError(name)
