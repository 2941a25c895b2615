"""Text that stands for a missing value, which pandas counts as a value like any other."""

from __future__ import annotations

import warnings

import pandas as pd

from ._messages import caller_stacklevel

# What `astype(str)` makes of a missing value (NaN, None, pd.NA, NaT), and what R writes for
# one (NA) in a column exported as text.
MISSING_AS_TEXT = frozenset(["", "nan", "none", "<na>", "nat", "na", "null"])
# What people also write for "no label" in a column of labels.
NO_LABEL_AS_TEXT = MISSING_AS_TEXT | frozenset(
    ["n/a", "?", "-", "missing", "unknown", "unassigned", "unlabelled", "unlabeled"]
)


def text_counts(column: pd.Series, words: frozenset[str]) -> pd.Series:
    """Return how many cells hold each value of `column` that reads as one of `words`.

    Read as text, stripped, in any case; largest first. Only the distinct values are read as
    text, not every cell (a million cells: 0.33 s).
    """
    counts = column.value_counts(dropna=True)
    counts = counts[counts > 0]
    counts = counts.groupby(counts.index.astype(str)).sum()
    text = counts.index.to_series()
    found = counts[text.str.strip().str.lower().isin(words).to_numpy()]
    return found.sort_values(ascending=False, kind="stable")


def listed(found: pd.Series) -> str:
    """Return "'NA' (12 cells), ..." for `text_counts`' result."""
    # as text: a numpy string's repr, np.str_('nan'), is no code to paste without numpy
    return ", ".join(
        f"{str(value)!r} ({n} cell{'s' if n != 1 else ''})" for value, n in found.items()
    )


def made_missing(key: str, value: str) -> str:
    """Return the line that makes the cells holding `value` in ``obs[key]`` missing."""
    column = f"adata.obs[{key!r}]"
    return f"`{column} = {column}.mask({column}.astype(str) == {value!r})`"


def warn_if_no_label_as_truth(column: pd.Series, name: str, how: str) -> None:
    """Warn where a column of annotated types, scored against, holds "no label" as text.

    Such cells count as a type of their own in the scores, where missing values leave them out.
    `how` says how the column was given, e.g. "--truth 'celltype'".
    """
    found = text_counts(column, NO_LABEL_AS_TEXT)
    if found.empty:
        return
    warnings.warn(
        f"{how} labels cells {listed(found)}: such a value is scored as a cell type of its own, "
        "since only missing values leave cells out of the scores. If it means 'no label', "
        f"make those cells missing first, e.g. {made_missing(name, str(found.index[0]))}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
