"""Input checks and transforms.

None of them modifies an AnnData, except `recipe`, the preparation the command line applies (in
place, like scanpy's `recipe_*` functions), and `clr`, which normalises protein counts in
``obsm``.
"""

from ._batches import BatchWarning
from ._counts import (
    CountStatistics,
    all_finite,
    count_statistics,
    get_counts,
    is_count_matrix,
)
from ._protein import clr
from ._recipe import recipe

__all__ = [
    "BatchWarning",
    "CountStatistics",
    "all_finite",
    "clr",
    "count_statistics",
    "get_counts",
    "is_count_matrix",
    "recipe",
]
