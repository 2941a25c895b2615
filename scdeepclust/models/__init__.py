"""The methods as configurations of the shared engine, and the trained models they give.

`SCDCC` and `DESC` are what ``tl.scdcc(..., return_model=True)`` and
``tl.desc(..., return_model=True)`` return: `save` / `load` / `predict`. `load` reads either.
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
