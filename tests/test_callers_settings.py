"""Settings of the caller's session that the tools work under, as they do without them."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
import sklearn  # noqa: E402

import scdeepclust as sdc  # noqa: E402
from _helpers import TEST_DEVICE  # noqa: E402

SHORT = dict(pretrain_epochs=4, max_epochs=4, batch_size=64, device=TEST_DEVICE)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_sklearns_pandas_output_leaves_the_tools_and_the_umap_working(request, tool):
    """``sklearn.set_config(transform_output="pandas")`` (common beside sklearn pipelines)
    made sc.pp.neighbors' kNN transformer refuse its sparse graph: both tools failed on their
    Leiden start, and pl.umap too."""
    data = request.getfixturevalue("scaled" if tool == "desc" else "sim")
    run = sdc.tl.desc if tool == "desc" else sdc.tl.scdcc
    plain = run(data, resolution=0.5, copy=True, progress=False, **SHORT)
    with sklearn.config_context(transform_output="pandas"):
        under = run(data, resolution=0.5, copy=True, progress=False, **SHORT)
        sdc.pl.umap(under, tool, show=False)
        assert sklearn.get_config()["transform_output"] == "pandas"
    plt.close("all")
    np.testing.assert_array_equal(under.obs[tool].to_numpy(), plain.obs[tool].to_numpy())
    assert under.obsm[f"X_umap_{tool}"].shape == (data.n_obs, 2)


def test_a_process_without_stderr_trains_without_a_progress_bar(scaled, monkeypatch):
    """pythonw or a frozen app without a console has sys.stderr None: tqdm's bar failed with
    "'NoneType' object has no attribute 'write'" at the first epoch."""
    assert int(sc.settings.verbosity) > 0  # else no bar is drawn anyway
    shown = sdc.tl.desc(scaled, n_clusters=3, copy=True, progress=True, **SHORT)
    monkeypatch.setattr(sys, "stderr", None)
    hidden = sdc.tl.desc(scaled, n_clusters=3, copy=True, progress=True, **SHORT)
    np.testing.assert_array_equal(hidden.obs["desc"].to_numpy(), shown.obs["desc"].to_numpy())
