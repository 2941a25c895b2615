"""Tools: one call from an AnnData to clusters, an embedding and soft assignments."""

from ._desc import desc
from ._scdcc import scdcc

__all__ = ["desc", "scdcc"]
