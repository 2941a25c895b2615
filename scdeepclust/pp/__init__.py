"""Input checks and transforms.

None of them modifies an AnnData, except `recipe`, the preparation the command line applies (in
place, like scanpy's `recipe_*` functions).
"""

from ._batches import BatchWarning
from ._counts import (
    CountStatistics,
    all_finite,
    count_statistics,
    get_counts,
    is_count_matrix,
)
from ._recipe import recipe

__all__ = [
    "BatchWarning",
    "CountStatistics",
    "all_finite",
    "count_statistics",
    "get_counts",
    "is_count_matrix",
    "recipe",
]
