"""The methods as configurations of the shared engine."""

from ._scdcc import SCDCCConfig, fit_scdcc

__all__ = ["SCDCCConfig", "fit_scdcc"]
