"""Which item columns the text tower reads, chosen from the dataset's own columns.

`auto` (the `small` and `full` presets): `title`, then the dataset's declared categorical item
attributes (dataset.json `item_categorical`, e.g. category, brand), then any other text column
holding multi-valued 'a|b' cells (e.g. MovieLens genres). A preset therefore never names a
column only one dataset has; `--text-columns` overrides the choice, and a column the items do
not have is an error that lists the ones they do.
"""
from __future__ import annotations

from .errors import EncoderError

AUTO = "auto"
NOT_TEXT = ("item_id", "image_path", "first_seen")


class UnknownTextColumnError(EncoderError):
    def __init__(self, unknown: list[str], available: list[str]):
        super().__init__(f"text column(s) {unknown} are not columns of items.parquet; it has {available}. "
                         "Pass existing ones with --text-columns (comma-separated), or 'auto'.")


def _multi_valued(series) -> bool:
    values = series.dropna().astype(str).head(1000)
    return series.dtype == object and bool(values.str.contains("|", regex=False).any())


def choose_text_columns(dataset, requested=AUTO) -> list[str]:
    """The text columns for `dataset` (a list, or AUTO / None for the automatic choice)."""
    items = dataset.items
    available = [c for c in items.columns if c not in NOT_TEXT]
    if requested in (None, AUTO) or list(requested) == [AUTO]:
        chosen = ["title"] if "title" in items.columns else []
        chosen += [c for c in dataset.meta.item_categorical if c in items.columns and c not in chosen]
        chosen += [c for c in available if c not in chosen and _multi_valued(items[c])]
        if not chosen:
            raise EncoderError(f"no text column found among {available}; name one with --text-columns")
        return chosen
    unknown = [c for c in requested if c not in items.columns]
    if unknown:
        raise UnknownTextColumnError(unknown, available)
    return list(requested)
