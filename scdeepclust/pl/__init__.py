"""Plots of clustering results, on top of scanpy's plotting."""

from ._embedding import embedding

__all__ = ["embedding"]
