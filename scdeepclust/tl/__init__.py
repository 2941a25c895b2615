"""Tools: one call from an AnnData to clusters, an embedding and soft assignments."""

from ._scdcc import scdcc

__all__ = ["scdcc"]
