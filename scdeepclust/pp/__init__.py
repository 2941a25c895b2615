"""Input checks and transforms; none of them modifies an AnnData."""

from ._counts import (
    CountStatistics,
    all_finite,
    count_statistics,
    get_counts,
    is_count_matrix,
)

__all__ = ["CountStatistics", "all_finite", "count_statistics", "get_counts", "is_count_matrix"]
