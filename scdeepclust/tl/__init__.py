"""Tools: one call from an AnnData to clusters, an embedding and soft assignments.

Also the mapping of new cells onto a trained model.
"""

from ._desc import desc
from ._map import map_to_model
from ._scdcc import scdcc

__all__ = ["desc", "map_to_model", "scdcc"]
