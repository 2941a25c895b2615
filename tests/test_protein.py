"""Protein (CITE-seq ADT) levels: `pp.clr` and how scDCC takes counts."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import scdeepclust as sdc
from _helpers import ONE_EPOCH
from scdeepclust.pp._protein import holds_protein_counts


def _with_counts(counts, as_frame=False):
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(len(counts))]))
    counts = np.asarray(counts)
    adata.obsm["protein"] = (
        pd.DataFrame(
            counts, index=adata.obs_names, columns=[f"p{j}" for j in range(counts.shape[1])]
        )
        if as_frame
        else counts
    )
    return adata


def test_clr_measures_each_cells_proteins_against_their_mean_log():
    # a cell's counts x become log1p(x / g), log(g) the mean of log1p(x) over its proteins
    counts = np.array([[1000.0, 0.0], [0.0, 0.0], [3.0, 3.0]])
    adata = _with_counts(counts)
    sdc.pp.clr(adata)
    got = adata.obsm["protein"]
    g0 = np.exp(np.log1p(1000) / 2)
    expected = [[np.log1p(1000 / g0), 0.0], [0.0, 0.0], [np.log1p(3 / 4), np.log1p(3 / 4)]]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.dtype == np.float32


def test_clr_puts_an_abundant_protein_on_the_others_footing():
    # protein 0 is 100 times as abundant in every cell: on counts it alone sets the distances
    rng = np.random.default_rng(0)
    high = rng.random(200) < 0.5  # half the cells carry twice the second protein
    counts = np.stack(
        [rng.poisson(5000, 200), rng.poisson(np.where(high, 100, 50)), rng.poisson(50, 200)], 1
    )
    levels = sdc.pp.clr(_with_counts(counts), copy=True).obsm["protein"]
    for values, told_apart in ((counts.astype(float), False), (levels, True)):
        d = np.linalg.norm(values[:, None] - values[None], axis=2)
        same = high[:, None] == high[None]
        assert bool(np.median(d[~same]) > 2 * np.median(d[same])) is told_apart


def test_clr_keeps_a_dataframe_and_writes_where_asked():
    counts = np.array([[10, 0, 5], [2, 30, 1]])
    adata = _with_counts(counts, as_frame=True)
    before = adata.obsm["protein"].copy()
    out = sdc.pp.clr(adata, copy=True)
    pd.testing.assert_frame_equal(adata.obsm["protein"], before)  # copy=True leaves it
    assert list(out.obsm["protein"].columns) == ["p0", "p1", "p2"]
    assert list(out.obsm["protein"].index) == ["c0", "c1"]
    assert sdc.pp.clr(adata, key_added="protein_clr") is None
    pd.testing.assert_frame_equal(adata.obsm["protein"], before)  # the counts stay
    np.testing.assert_array_equal(adata.obsm["protein_clr"], out.obsm["protein"])
    sparse_input = _with_counts(counts)
    sparse_input.obsm["protein"] = sparse.csr_matrix(counts)
    sdc.pp.clr(sparse_input)
    np.testing.assert_array_equal(sparse_input.obsm["protein"], out.obsm["protein"].to_numpy())


@pytest.mark.parametrize(
    "levels, message",
    [
        ([[1.5, 2.0], [1.0, 30.0]], "holds fractions (e.g. 1.5) no larger than 30"),
        ([[2014.87, 2.0], [1.0, -3.0]], "holds negative values (the smallest is -3)"),
        (np.zeros((0, 3)), "at least one cell and one protein; it has shape (0, 3)"),
        ([[-1.0, 2.0], [1.0, 3.0]], "holds negative values (the smallest is -1)"),
        ([[np.nan, 2.0], [1.0, 3.0]], "1 NaN or infinite values"),
    ],
)
def test_clr_refuses_what_is_not_counts(levels, message):
    adata = _with_counts(levels)
    before = adata.obsm["protein"].copy()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sdc.pp.clr(adata)
    np.testing.assert_array_equal(adata.obsm["protein"], before)


def test_clr_twice_is_refused_and_so_are_a_missing_key_and_no_anndata():
    adata = _with_counts([[10, 0], [2, 30]])
    sdc.pp.clr(adata)
    with pytest.raises(ValueError, match="looks normalised already"):
        sdc.pp.clr(adata)
    with pytest.raises(KeyError, match=r"'adt' is not in adata.obsm; keys: \['protein'\]"):
        sdc.pp.clr(adata, "adt")
    with pytest.raises(TypeError, match="AnnData"):
        sdc.pp.clr(np.ones((2, 2)))


@pytest.mark.parametrize(
    "levels, counts",
    [
        ([[0, 500], [12, 3]], True),
        ([[0.0, 1.0], [1.0, 0.0]], False),  # marks someone chose
        ([[0, 2], [3, 10]], False),  # a few levels, none above 10
        ([[0.5, 40.0], [12.0, 3.0]], False),  # within a log scale
        ([[0.5, 500.0], [12.0, 3.0]], True),  # fractional counts (ambient signal removed)
        ([[-1, 500], [12, 3]], False),
    ],
)
def test_which_levels_are_taken_for_counts(levels, counts):
    assert holds_protein_counts(np.asarray(levels, dtype=np.float64)) is counts


def test_scdcc_warns_of_antibody_counts_and_not_of_normalised_levels():
    from scdeepclust.tl._scdcc import _build_constraints

    rng = np.random.default_rng(0)
    adata = _with_counts(rng.poisson([400, 30, 5], (100, 3)))

    def build():
        _build_constraints(adata, None, None, None, "protein", None, np.random.default_rng(0))

    with pytest.warns(UserWarning, match=r"holds counts .*sdc.pp.clr\(adata, 'protein'\)"):
        build()
    sdc.pp.clr(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build()


def test_clr_takes_fractional_counts_above_a_log_scale():
    counts = np.array([[2014.87, 3.2], [10.5, 0.0]])
    levels = sdc.pp.clr(_with_counts(counts), copy=True).obsm["protein"]
    g = np.exp(np.log1p(counts).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(levels, np.log1p(counts / g), rtol=1e-6)


@pytest.mark.parametrize(
    "keys, error, message",
    [
        (dict(key_added=""), TypeError, "key_added must name a key to write"),
        (dict(key_added=5), TypeError, "key_added must name a key to write"),
        (dict(key_added="a/b"), ValueError, "contains '/'"),
        (dict(protein_key=["protein"]), TypeError, "protein_key must name a key of adata.obsm"),
    ],
)
def test_clr_refuses_keys_it_could_not_write_or_read(keys, error, message):
    adata = _with_counts([[10, 0], [2, 30]])
    before = adata.obsm["protein"].copy()
    with pytest.raises(error, match=message):
        sdc.pp.clr(adata, **keys)
    assert list(adata.obsm) == ["protein"]
    np.testing.assert_array_equal(adata.obsm["protein"], before)


@pytest.mark.parametrize(
    "levels, counts",
    [
        ([[0, 11], [2, 3]], True),  # whole numbers just above 10
        ([[0.5, 50.5], [2.0, 3.0]], True),  # fractions just above a log scale
        ([[0.5, 50.0], [2.0, 3.0]], False),
        ([[np.inf, 1.0], [2.0, 3.0]], False),
        ([[0.0, 0.0], [0.0, 0.0]], False),
    ],
)
def test_which_levels_are_taken_for_counts_at_the_edges(levels, counts):
    assert holds_protein_counts(np.asarray(levels, dtype=np.float64)) is counts


def test_clr_refuses_fractions_that_reach_exactly_a_log_scales_top():
    adata = _with_counts([[0.5, 50.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"fractions \(e.g. 0.5\) no larger than 50"):
        sdc.pp.clr(adata)


def test_protein_pairs_default_to_one_of_each_kind_per_cell(sim, monkeypatch):
    # documented: for protein_key, n_pairs defaults to n_obs (mutant S40 drew twice as many)
    import scdeepclust.tl._scdcc as scdcc_tool

    seen = []
    real = scdcc_tool.pairs_from_protein

    def recording(protein, n, rng, **kw):
        seen.append(n)
        return real(protein, n, rng, **kw)

    monkeypatch.setattr(scdcc_tool, "pairs_from_protein", recording)
    levels = np.random.default_rng(0).normal(size=(sim.n_obs, 5))
    levels[:, 0] += sim.obs["group"].cat.codes.to_numpy() * 3  # a protein that marks the groups
    sim.obsm["protein"] = levels
    sdc.tl.scdcc(sim, 3, protein_key="protein", copy=True, **ONE_EPOCH)
    sdc.tl.scdcc(sim, 3, protein_key="protein", n_pairs=30, copy=True, **ONE_EPOCH)
    assert seen == [sim.n_obs, 30]
