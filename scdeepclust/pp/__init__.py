"""Input checks and transforms; none of them modifies an AnnData."""

from ._counts import CountStatistics, count_statistics, get_counts, is_count_matrix

__all__ = ["CountStatistics", "count_statistics", "get_counts", "is_count_matrix"]
