"""The methods as configurations of the shared engine."""

from ._desc import DESCConfig, PretrainedDESC, cluster_desc, default_hidden, pretrain_desc
from ._scdcc import SCDCCConfig, fit_scdcc

__all__ = [
    "DESCConfig",
    "PretrainedDESC",
    "SCDCCConfig",
    "cluster_desc",
    "default_hidden",
    "fit_scdcc",
    "pretrain_desc",
]
