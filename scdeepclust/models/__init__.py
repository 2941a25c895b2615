"""The methods as configurations of the shared engine, and the trained models they give.

`SCDCC` and `DESC` are what ``tl.scdcc(..., return_model=True)`` and
``tl.desc(..., return_model=True)`` return: `save` / `load`, and `predict` /
`get_latent_representation`, which return arrays for new cells without writing to them
(``tl.map_to_model`` writes the same result). `load` reads either.

This layer never imports :mod:`scdeepclust.tl`, which builds on it.
"""

from ._desc import DESCConfig, PretrainedDESC, cluster_desc, default_hidden, pretrain_desc
from ._scdcc import SCDCCConfig, fit_scdcc
from ._trained import DESC, MODEL_FORMAT_VERSION, SCDCC, TrainedModel, load

__all__ = [
    "DESC",
    "DESCConfig",
    "MODEL_FORMAT_VERSION",
    "PretrainedDESC",
    "SCDCC",
    "SCDCCConfig",
    "TrainedModel",
    "cluster_desc",
    "default_hidden",
    "fit_scdcc",
    "load",
    "pretrain_desc",
]
