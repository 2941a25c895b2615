import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import FAST, ONE_EPOCH, assert_unchanged, record_keyword, snapshot, with_known_labels
from scdeepclust.train import TrainingDiverged


def test_output_contract_and_h5ad_round_trip(sim, tmp_path):
    # 4 epochs of pretraining can leave a cluster empty (seed 2 before, seed 0 now); 10 do not
    options = {**FAST, "pretrain_epochs": 10}
    sdc.tl.scdcc(sim, 3, **options)
    labels = sim.obs["scdcc"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert list(labels.cat.categories) == ["0", "1", "2"]
    emb, probs = sim.obsm["X_scdcc"], sim.obsm["scdcc_probs"]
    assert emb.shape == (sim.n_obs, 32) and emb.dtype == np.float32
    assert probs.shape == (sim.n_obs, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # the refined labels: the soft assignments' highest entry except for the cells moved
    codes = labels.astype(int).to_numpy()
    uns = sim.uns["scdcc"]
    assert (probs.argmax(1) != codes).sum() == uns["refinement"]["cells_moved"]
    # the confidence: the soft assignment, or for a moved cell the refinement's probability
    confidence = sim.obs["scdcc_confidence"].to_numpy()
    kept = probs.argmax(1) == codes
    np.testing.assert_allclose(confidence[kept], probs[np.arange(sim.n_obs), codes][kept])
    assert np.all((confidence > 0) & (confidence <= 1))
    assert uns["params"]["n_clusters"] == 3 and uns["params"]["counts_from"] == "layers['counts']"
    assert uns["params"]["method"] == "scdcc"
    assert uns["n_clusters"] == labels.nunique()
    assert len(uns["history"]["pretrain_zinb"]) == options["pretrain_epochs"]
    assert len(uns["history"]["cluster_zinb"]) >= 1
    assert uns["timings"]["total_s"] > 0
    path = tmp_path / "out.h5ad"
    sim.write_h5ad(path)
    back = sc.read_h5ad(path)
    assert back.obs["scdcc"].equals(sim.obs["scdcc"])
    np.testing.assert_array_equal(back.obsm["X_scdcc"], emb)
    np.testing.assert_array_equal(
        back.uns["scdcc"]["history"]["pretrain_zinb"], uns["history"]["pretrain_zinb"]
    )


def test_recovers_simulated_groups(sim):
    sdc.tl.scdcc(sim, 3, pretrain_epochs=30, max_epochs=20, progress=False, batch_size=64)
    assert adjusted_rand_score(sim.obs["group"], sim.obs["scdcc"]) > 0.9


@pytest.mark.parametrize("depth", ["deeply sequenced", "counts x 100"])
def test_groups_of_deep_counts_stay_apart(depth):
    # The genes' means started near 1 whatever the data's depth: at these depths the latent
    # space lost the groups (one or two clusters, ARI 0.00-0.01).
    if depth == "deeply sequenced":
        adata = sdc.datasets.simulate(1000, 300, 5, mean_log_expression=1.5, random_state=0)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*do not step like raw counts")
            sdc.tl.scdcc(adata, progress=False)
    else:
        adata = sdc.datasets.simulate(1000, 300, 5, random_state=0)
        adata.layers["counts"] = adata.layers["counts"] * 100
        with pytest.warns(UserWarning, match="do not step like raw counts") as caught:
            sdc.tl.scdcc(adata, progress=False)
        assert {w.filename for w in caught if "raw counts" in str(w.message)} == {__file__}
    assert adjusted_rand_score(adata.obs["group"], adata.obs["scdcc"]) > 0.9


def _normalised_and_rounded(counts, total: float):
    counts = sparse.csr_matrix(counts, dtype=np.float64)
    scaled = sparse.diags(total / np.asarray(counts.sum(axis=1)).ravel()) @ counts
    scaled.data = np.round(scaled.data)
    scaled.eliminate_zeros()
    return scaled


def test_counts_that_step_by_more_than_one_are_told_from_raw_ones():
    from scdeepclust.pp._input import scan_matrix

    def share(matrix):
        return scan_matrix(matrix, steps=True).share_on_coarse_step

    raw = sdc.datasets.simulate(500, 500, 4, random_state=0).layers["counts"]
    # deep enough that the smallest count passes 1 in most cells, yet few values lie near it
    deep = sdc.datasets.simulate(500, 500, 4, mean_log_expression=6, random_state=0)
    deep = deep.layers["counts"]
    assert np.mean(scan_matrix(deep, steps=True).smallest_positive >= 2) > 0.5
    demo = sdc.datasets.pbmc68k().layers["counts"]
    for counts in (raw, deep, demo, raw.toarray().astype(np.int32)):
        assert share(counts) == 0.0
    # read counts without UMIs: each molecule gave Poisson(30) reads, spread around 30 times
    # each count, not all at one value
    amplified = raw.copy()
    amplified.data = np.random.default_rng(0).poisson(30 * amplified.data).astype(np.float32)
    assert share(amplified) < 0.1
    for counts in (
        raw * 3,
        (raw * 1000).toarray(),
        _normalised_and_rounded(raw, 1e4),
        _normalised_and_rounded(demo, 1e6),
    ):
        assert share(counts) > 0.9
    # each row against a reference, in every storage
    rng = np.random.default_rng(1)
    mixed = rng.poisson(1.0, (60, 30)).astype(np.float32)
    mixed[::3] *= rng.integers(2, 5, size=(20, 1))  # a third of the rows multiplied
    mixed[1::6, :25] = 0  # and some with too few values to judge
    positive = np.where(mixed > 0, mixed, np.inf)
    smallest = positive.min(axis=1)
    n_positive = (mixed > 0).sum(axis=1)
    expected = (
        (n_positive >= 10)
        & (smallest >= 2)
        & ((positive == smallest[:, None]).sum(axis=1) >= 0.1 * n_positive)
    )
    assert expected[::3].any() and not expected[1::3].any()
    for stored in (mixed, sparse.csr_matrix(mixed), sparse.csc_matrix(mixed), mixed.astype(int)):
        summary = scan_matrix(stored, steps=True, chunk_size=7)
        np.testing.assert_array_equal(summary.coarse_step_rows, expected)
        np.testing.assert_array_equal(summary.judged_rows, n_positive >= 10)
    # rows with fewer than 10 positive values are not judged
    few = sparse.csr_matrix(np.array([[3.0, 6.0, 0.0] * 3, [0.0] * 9]))
    assert share(few) == 0.0
    # and no pass is spent on it unless asked
    assert scan_matrix(raw * 3).smallest_positive is None


def test_counts_warn_as_multiplied_only_where_most_cells_step_coarsely():
    """Read counts without UMIs leave up to a fifth of the cells stepping by more than 1 (worm
    neurons): no warning there, one where most cells do."""
    from scdeepclust.pp._input import scan_matrix, warn_if_multiplied_counts

    counts = np.random.default_rng(0).poisson(1.0, (100, 40)).astype(np.float32)
    for share, warns in ((0.2, False), (0.45, False), (0.6, True)):
        stepping = counts.copy()
        stepping[: int(share * 100)] *= 3
        summary = scan_matrix(stepping, steps=True)
        assert summary.share_on_coarse_step == pytest.approx(share)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_multiplied_counts(summary, "X")
        assert any("do not step like raw counts" in str(w.message) for w in caught) == warns


def test_only_0s_and_1s_warn_as_binary_where_cells_hold_several():
    """Counts so shallow that each cell holds about one molecule can be all 1s."""
    from scdeepclust.pp._input import scan_matrix, warn_if_binary

    rng = np.random.default_rng(0)
    for per_cell, warns in ((1, False), (8, True)):
        binary = np.zeros((1000, 200), np.float32)
        for row in binary:
            row[rng.choice(200, per_cell, replace=False)] = 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_binary(scan_matrix(binary), "X")
        assert any("only 0s and 1s" in str(w.message) for w in caught) == warns


def test_mapping_multiplied_counts_onto_a_model_warns(sim):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*do not step like raw counts")
        _, model = sdc.tl.scdcc(sim, 3, copy=True, return_model=True, **FAST)
    new = sim.copy()
    new.layers["counts"] = new.layers["counts"] * 1000
    with pytest.warns(UserWarning, match="do not step like raw counts") as caught:
        model.predict(new)
    assert {w.filename for w in caught if "raw counts" in str(w.message)} == {__file__}


def test_sigma_is_the_noise_the_encoder_reads_in_training(sim):
    """scDCC's denoising: the encoder reads the input with Gaussian noise of sd `sigma` in
    both stages (the same draws whatever sigma, so sigma alone makes the difference)."""
    runs = [
        sdc.tl.scdcc(sim, 3, sigma=sigma, copy=True, **FAST).obsm["X_scdcc"] for sigma in (0.0, 2.5)
    ]
    assert not np.allclose(runs[0], runs[1], atol=1e-3)


def test_the_pretraining_epochs_reported_are_those_run(sim, monkeypatch):
    """Pretraining on uniform draws stops on a plateau at the default number of epochs: the
    run's record says how many epochs it ran, not how many it could have."""
    from scdeepclust.models import _scdcc

    class StopsAfterTwo(_scdcc.PlateauStopper):
        def update(self, loss):
            super().update(loss)
            self.seen = getattr(self, "seen", 0) + 1
            return self.seen >= 2

    monkeypatch.setattr(_scdcc, "PlateauStopper", StopsAfterTwo)
    out = sdc.tl.scdcc(sim, 3, pretrain_balance=0.0, copy=True, max_epochs=1, progress=False)
    uns = out.uns["scdcc"]
    assert len(uns["history"]["pretrain_zinb"]) == uns["pretrain_epochs"] == 2


def test_genes_start_at_the_level_of_deep_counts_only():
    from scdeepclust.models._scdcc import initial_mean_count
    from scdeepclust.nn import ZINBAutoencoder

    # the normalised counts of a cell sum to the median library size
    assert initial_mean_count(30_000, 2_000) == pytest.approx(15.0)
    # shallower data keep the start measured on the labelled datasets
    assert initial_mean_count(900, 2_000) == 1.0
    model = ZINBAutoencoder(10, encoder_hidden=(8,), latent_dim=2, decoder_hidden=(8,))
    bias = model.zinb_heads.bias.detach().clone()
    model.scale_initial_mean(1.0)
    assert torch.equal(model.zinb_heads.bias, bias)
    model.scale_initial_mean(15.0)
    shift = model.zinb_heads.bias.detach() - bias
    torch.testing.assert_close(shift[:10], torch.full((10,), float(np.log(15.0))))
    assert torch.equal(shift[10:], torch.zeros(20))


def test_leiden_when_no_cluster_count(sim):
    sdc.tl.scdcc(
        sim, pretrain_epochs=30, max_epochs=5, progress=False, batch_size=64, resolution=0.3
    )
    assert sim.uns["scdcc"]["init_method"] == "leiden"
    assert sim.uns["scdcc"]["n_clusters"] >= 2


def test_same_seed_same_labels(sim):
    a = sdc.tl.scdcc(sim, 3, random_state=7, copy=True, **FAST)
    b = sdc.tl.scdcc(sim, 3, random_state=7, copy=True, **FAST)
    np.testing.assert_array_equal(a.obs["scdcc"], b.obs["scdcc"])
    np.testing.assert_array_equal(a.obsm["X_scdcc"], b.obsm["X_scdcc"])
    c = sdc.tl.scdcc(sim, 3, random_state=8, copy=True, **FAST)
    assert not np.array_equal(a.obsm["X_scdcc"], c.obsm["X_scdcc"])
    # None draws a seed, recorded: that seed repeats the run exactly
    drawn = sdc.tl.scdcc(sim, 3, random_state=None, copy=True, **FAST)
    seed = drawn.uns["scdcc"]["params"]["random_state"]
    again = sdc.tl.scdcc(sim, 3, random_state=seed, copy=True, **FAST)
    np.testing.assert_array_equal(drawn.obsm["X_scdcc"], again.obsm["X_scdcc"])
    other = sdc.tl.scdcc(sim, 3, random_state=None, copy=True, **FAST)
    assert other.uns["scdcc"]["params"]["random_state"] != seed


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_numpy_generator_as_random_state_gives_the_seed(sim, tool, tmp_path):
    """scanpy's functions take a RandomState (and a Generator); the tools refused both."""
    fn = getattr(sdc.tl, tool)
    for make in (np.random.RandomState, np.random.default_rng):
        generator = make(3)
        result = fn(sim, n_clusters=3, random_state=generator, copy=True, **FAST)
        seed = result.uns[tool]["params"]["random_state"]
        assert isinstance(seed, int)
        again = fn(sim, n_clusters=3, random_state=seed, copy=True, **FAST)
        np.testing.assert_array_equal(result.obsm[f"X_{tool}"], again.obsm[f"X_{tool}"])
        # one draw, as a generator's other users see it advance
        drawn = make(3)
        drawn_seed = (
            drawn.randint(0, 2**32, dtype=np.int64)
            if isinstance(drawn, np.random.RandomState)
            else drawn.integers(0, 2**32)
        )
        assert seed == drawn_seed
        assert generator.random() == drawn.random()
    # where the seed must be known in advance, a generator is refused as None is
    with pytest.raises(ValueError, match=r"a numpy generator gives a new seed at every call"):
        fn(sim, n_clusters=3, random_state=np.random.default_rng(), checkpoint_dir=tmp_path, **FAST)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_refused_call_leaves_the_generator_given_as_random_state_alone(sim, tool):
    """The seed was drawn before the data's checks: a refused call advanced the generator, so the
    call repeated once mended ran with another seed than a first call would have."""
    fn = getattr(sdc.tl, tool)
    bad = sim.copy()
    if tool == "desc":  # refused on reading the data, after the options' checks
        bad.X = bad.X.toarray()
        bad.X[0, 0] = np.nan
        options, refusal = {}, "NaN or infinite"
    else:  # refused on building the pairs from the labels, just before training
        options = {"must_link": [("no such cell", sim.obs_names[0])]}
        refusal = "names cells not in adata.obs_names"
    for make in (np.random.RandomState, np.random.default_rng):
        generator = make(5)
        with pytest.raises((ValueError, KeyError), match=refusal):
            fn(bad, n_clusters=3, random_state=generator, **options, **FAST)
        assert generator.random() == make(5).random()


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_copy_does_not_warn_of_replacing_the_callers_results(sim, tool):
    """copy=True warned that the caller's results "will be overwritten": they stay as they were
    (scanpy says nothing either); written in place, the warning stays."""
    fn = getattr(sdc.tl, tool)
    fn(sim, n_clusters=3, **FAST)
    before = sim.obsm[f"X_{tool}"].copy()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*will be overwritten")
        again = fn(sim, n_clusters=3, random_state=1, copy=True, **FAST)
    np.testing.assert_array_equal(sim.obsm[f"X_{tool}"], before)
    assert not np.array_equal(again.obsm[f"X_{tool}"], before)
    with pytest.warns(UserWarning, match=r"already exist\(s\) and will be overwritten"):
        fn(sim, n_clusters=3, **FAST)


def test_sparse_and_dense_give_the_same_result(sim):
    dense = sim.copy()
    dense.X = sim.X.toarray()
    del dense.layers["counts"]
    del sim.layers["counts"]
    a = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    b = sdc.tl.scdcc(dense, 3, copy=True, **FAST)
    np.testing.assert_allclose(a.obsm["X_scdcc"], b.obsm["X_scdcc"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(a.obs["scdcc"], b.obs["scdcc"])


def test_copy_leaves_input_alone(sim):
    before = snapshot(sim)
    out = sdc.tl.scdcc(sim, 3, copy=True, key_added="mine", **FAST)
    assert_unchanged(sim, before)
    assert "mine" in out.obs and "X_mine" in out.obsm and "mine" in out.uns


def test_refuses_non_counts_and_leaves_adata_unchanged(sim):
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    del sim.layers["counts"]
    before = snapshot(sim)
    with pytest.raises(ValueError, match="does not hold raw counts.*reads that layer by default"):
        sdc.tl.scdcc(sim, 3, **FAST)
    assert_unchanged(sim, before)


def test_counts_kept_in_a_layer_of_another_name_are_named_as_the_ones_to_read(sim):
    """scvi-tools users keep counts under names of their own: the refusal of X names the
    layers that hold counts (not the others), also where layers['counts'] holds none."""
    from scdeepclust._cli import in_command_terms

    sim.layers["raw_counts"] = sim.layers.pop("counts")
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.layers["lognorm"] = sim.X.copy()
    before = snapshot(sim)
    advice = r"adata\.layers\['raw_counts'\] holds counts: pass `layer='raw_counts'` to read"
    with pytest.raises(ValueError, match=r"adata\.X does not hold raw counts.*" + advice):
        sdc.tl.scdcc(sim, 3, **FAST)
    assert_unchanged(sim, before)
    with pytest.raises(ValueError, match=r"layers\['raw_counts'\] holds counts: pass") as error:
        sdc.pp.recipe(sim.copy(), "scdcc")
    assert "pass `--layer raw_counts` to read them" in in_command_terms(str(error.value))
    sdc.tl.scdcc(sim, 3, layer="raw_counts", **FAST)  # the advice, followed
    sim.layers["counts"] = sim.layers["lognorm"]  # found by its name, holding no counts
    with pytest.raises(ValueError, match=r"adata\.layers\['counts'\] does not hold.*" + advice):
        sdc.tl.scdcc(sim, 3, **FAST)
    sim.layers["umi"] = sim.layers["raw_counts"]
    with pytest.raises(
        ValueError,
        match=r"adata\.layers\['raw_counts'\], adata\.layers\['umi'\] hold counts: pass "
        r"the one to read as `layer`, e\.g\. `layer='raw_counts'`\.$",
    ):
        sdc.tl.scdcc(sim, 3, **FAST)
    # flags and empty placeholders are no counts to read
    del sim.layers["umi"]
    sim.layers["detected"] = sim.layers["raw_counts"] > 0
    sim.layers["detected_as_numbers"] = sim.layers["detected"].astype(np.float32)
    sim.layers["placeholder"] = sparse.csr_matrix(sim.shape, dtype=np.float32)
    with pytest.raises(ValueError, match=advice + r" them\.$"):
        sdc.tl.scdcc(sim, 3, **FAST)


def test_divergence_is_reported_and_nothing_written(sim):
    before = snapshot(sim)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        sdc.tl.scdcc(sim, 3, pretrain_lr=1e8, **FAST)
    assert_unchanged(sim, before)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_clusters=1), ValueError, "integer >= 2"),
        (dict(n_clusters=10_000), ValueError, "larger than the number of cells"),
        (dict(n_clusters=3, layer="missing"), KeyError, "Layer 'missing' not found"),
        (dict(n_clusters=3, label_key="missing"), KeyError, "label_key 'missing'"),
        (dict(n_clusters=3, protein_key="missing"), KeyError, "protein_key 'missing'"),
        (dict(n_clusters=3, must_link=[[0, 1]], cannot_link=[[1, 0]]), ValueError, "both"),
        (dict(n_clusters=3, must_link=[[0, 10_000]]), ValueError, "outside"),
        (dict(n_clusters=3, device="cuda:7"), ValueError, "CUDA is not available"),
    ],
)
def test_bad_arguments(sim, kwargs, error, match):
    if kwargs.get("device", "").startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    before = snapshot(sim)
    with pytest.raises(error, match=match):
        sdc.tl.scdcc(sim, **kwargs, **FAST)
    assert_unchanged(sim, before)


def test_n_top_genes_does_not_modify_adata(sim):
    before = snapshot(sim)
    out = sdc.tl.scdcc(sim, 3, n_top_genes=50, copy=True, **FAST)
    assert_unchanged(sim, before)
    assert len(out.uns["scdcc"]["genes_used"]) == 50


def test_n_top_genes_of_counts_in_a_sparse_array_or_float16(sim):
    # A scipy sparse array failed inside scanpy's log1p ("setting an array element with a
    # sequence"); float16 counts overflowed when normalised and chose other genes.
    from scipy import sparse

    from scdeepclust.tl._scdcc import _highly_variable

    counts = sim.layers["counts"].astype(np.float32)
    want = _highly_variable(counts, 50, None)
    np.testing.assert_array_equal(_highly_variable(sparse.csr_array(counts), 50, None), want)
    deep = counts.toarray() * 60  # library sizes beyond float16's range once normalised
    np.testing.assert_array_equal(
        _highly_variable(deep.astype(np.float16), 50, None), _highly_variable(deep, 50, None)
    )
    adata = sc.AnnData(sparse.csr_array(counts), obs=sim.obs)
    out = sdc.tl.scdcc(adata, 3, n_top_genes=50, copy=True, **FAST)
    assert len(out.uns["scdcc"]["genes_used"]) == 50


def test_counts_in_longdouble_or_another_byte_order(sim):
    # np.longdouble counts failed inside scanpy's numba code (TypingError) with n_top_genes; a
    # CSR matrix of big-endian values failed at once ("scipy.sparse does not support dtype >f4")
    from scipy import sparse

    from scdeepclust.tl._scdcc import _highly_variable

    counts = sparse.csr_matrix(sim.layers["counts"], dtype=np.float32)
    big_endian = sparse.csr_matrix(
        (counts.data.astype(">f4"), counts.indices, counts.indptr), shape=counts.shape
    )
    want = _highly_variable(counts, 50, None)
    for stored in (
        counts.astype(np.longdouble),
        counts.toarray().astype(np.longdouble),
        big_endian,
        counts.toarray().astype(">f4"),
    ):
        np.testing.assert_array_equal(_highly_variable(stored, 50, None), want)
    columns = np.arange(10, 120)
    np.testing.assert_array_equal(
        _highly_variable(big_endian, 30, columns), _highly_variable(counts, 30, columns)
    )
    expected = sdc.tl.scdcc(sc.AnnData(counts), 3, n_top_genes=50, copy=True, **ONE_EPOCH)
    for stored in (counts.astype(np.longdouble), big_endian):
        out = sc.AnnData(stored)  # in place: anndata cannot copy the big-endian matrix
        sdc.tl.scdcc(out, 3, n_top_genes=50, **ONE_EPOCH)
        np.testing.assert_array_equal(
            out.uns["scdcc"]["genes_used"], expected.uns["scdcc"]["genes_used"]
        )
        np.testing.assert_allclose(out.obsm["X_scdcc"], expected.obsm["X_scdcc"], atol=1e-5)


def test_cells_without_counts_in_the_chosen_genes_are_named():
    sparse_counts = sdc.datasets.simulate(300, 2000, 4, random_state=0, mean_log_expression=-2.5)
    with pytest.raises(
        ValueError, match=r"cell\(s\) \(e\.g\. \['cell\d+'.*the n_top_genes=20 most"
    ):
        sdc.tl.scdcc(sparse_counts, 4, n_top_genes=20, **FAST)


def _same_cluster_rate(adata, pairs, key):
    lab = adata.obs[key].to_numpy()
    return np.mean(lab[pairs[:, 0]] == lab[pairs[:, 1]])


def test_must_links_are_honoured():
    # Must-link cells across two truly different groups: with the constraints they end up
    # together far more often than without.
    adata = sdc.datasets.simulate(300, 120, 4, de_fraction=0.2, de_log_fold=1.2, random_state=4)
    group = adata.obs["group"].to_numpy()
    g0, g1 = np.flatnonzero(group == "0"), np.flatnonzero(group == "1")
    rng = np.random.default_rng(0)
    pairs = np.stack([rng.choice(g0, 400), rng.choice(g1, 400)], axis=1)
    kw = dict(pretrain_epochs=20, max_epochs=30, progress=False, batch_size=64, tol=0)
    free = sdc.tl.scdcc(adata, 3, copy=True, **kw)
    linked = sdc.tl.scdcc(adata, 3, must_link=pairs, ml_weight=2.0, copy=True, **kw)
    # a pair drawn twice counts once
    n_distinct = len(np.unique(np.sort(pairs, axis=1), axis=0))
    assert n_distinct < 400 and linked.uns["scdcc"]["n_constraints"]["must_link"] == n_distinct
    assert "cluster_must_link" in linked.uns["scdcc"]["history"]
    before, after = (
        _same_cluster_rate(free, pairs, "scdcc"),
        _same_cluster_rate(linked, pairs, "scdcc"),
    )
    assert after > 0.9 and after > before + 0.3, (before, after)


def test_label_constraints_use_labelled_cells_only(sim):
    with_known_labels(sim)
    out = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **FAST)
    n_constraints = out.uns["scdcc"]["n_constraints"]
    n_labelled = int(sim.obs["known"].notna().sum())
    n_possible = n_labelled * (n_labelled - 1) // 2
    expected = min(100 * n_labelled, n_possible)
    assert n_constraints["must_link"] + n_constraints["cannot_link"] == expected
    assert "cluster_cannot_link" in out.uns["scdcc"]["history"]


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(n_clusters=3, init="kmeans"), "init='kmeans' has"),
        (dict(n_clusters=3, resolution=2.0), "resolution=2 has"),
        (dict(n_clusters=(2, 4), init="balanced-kmeans"), "init='balanced-kmeans' has"),
        (dict(init="kmeans"), "init='kmeans' has"),  # the number searched
    ],
)
def test_options_the_known_classes_replace_are_named(sim, options, named):
    with_known_labels(sim)
    with pytest.warns(UserWarning, match="no effect with `label_key`") as caught:
        out = sdc.tl.scdcc(sim, label_key="known", copy=True, **options, **FAST)
    assert named in str(caught[0].message)
    assert out.uns["scdcc"]["init_method"].startswith("known class means")
    # the same start as without them
    plain = {k: v for k, v in options.items() if k not in ("init", "resolution")}
    reference = sdc.tl.scdcc(sim, label_key="known", copy=True, **plain, **FAST)
    np.testing.assert_array_equal(out.obs["scdcc"], reference.obs["scdcc"])


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(init="kmeans"), "init='kmeans' has no effect without `n_clusters`"),
        (dict(n_clusters=(2, 4), resolution=2.0), "resolution=2 has no effect on a searched"),
        (dict(n_clusters=3, init="kmeans", resolution=2.0), "resolution=2 has no effect with"),
        (dict(n_clusters=3, resolution=2.0), None),  # starts Leiden's way to 3
        (dict(resolution=0.5), None),
    ],
)
def test_start_options_that_start_nothing_are_named(sim, options, named):
    # they were recorded in params as if used (init='kmeans' without n_clusters ran Leiden)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdc.tl.scdcc(sim, copy=True, **options, **FAST)
    said = [str(w.message) for w in caught if "no effect" in str(w.message)]
    assert len(said) == (0 if named is None else 1)
    if named is not None:
        assert named in said[0]


def test_pairs_at_weight_zero_are_no_prior_knowledge(sim):
    # they kept tol at 0.001 and refine off, so the ablation differed from a run without them
    plain = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    weightless = sdc.tl.scdcc(
        sim,
        3,
        must_link=[[0, 1]],
        cannot_link=[[0, 2]],
        ml_weight=0,
        cl_weight=0,
        copy=True,
        **FAST,
    )
    for name in ("tol", "refine"):
        assert weightless.uns["scdcc"]["params"][name] == plain.uns["scdcc"]["params"][name]
    np.testing.assert_array_equal(weightless.obs["scdcc"], plain.obs["scdcc"])
    weighted = sdc.tl.scdcc(sim, 3, must_link=[[0, 1]], copy=True, **FAST)
    assert weighted.uns["scdcc"]["params"]["refine"] == 0.0


def test_n_pairs_without_a_source_of_pairs_is_named(sim):
    with pytest.warns(UserWarning, match=r"n_pairs=50 has no effect without `label_key`"):
        sdc.tl.scdcc(sim, 3, n_pairs=50, must_link=[[0, 1]], copy=True, **FAST)


def test_init_starts_the_clusters_where_the_classes_outnumber_them(sim):
    with_known_labels(sim)
    for options in (dict(n_clusters=2), dict(n_clusters=(2, 2))):  # given, or bounded below 3
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = sdc.tl.scdcc(
                sim, label_key="known", init="balanced-kmeans", copy=True, **options, **FAST
            )
        assert not any("no effect with `label_key`" in str(w.message) for w in caught)
        said = "more than n_clusters=2" if options["n_clusters"] == 2 else "upper bound 2"
        assert sum(said in str(w.message) for w in caught) == 1
        assert out.uns["scdcc"]["init_method"].startswith("balanced-kmeans")
    # Leiden does not start them: its resolution is named
    with pytest.warns(UserWarning, match=r"resolution=0.7 has no effect .* classes outnumber"):
        sdc.tl.scdcc(sim, 2, label_key="known", resolution=0.7, copy=True, **FAST)


def _random_known_classes(adata, fraction, seed):
    """Labels for a `fraction` of the cells, drawn at random: they disagree with the data."""
    rng = np.random.default_rng(seed)
    labelled = rng.random(adata.n_obs) < fraction
    classes = rng.choice(["a", "b", "c"], adata.n_obs)
    return pd.Series(np.where(labelled, classes, None), index=adata.obs_names), labelled


def test_labelled_cells_keep_their_class_unless_labels_may_be_wrong(sim):
    known, labelled = _random_known_classes(sim, 0.1, seed=0)
    sim.obs["known"] = known
    kept = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **FAST)
    assert "cluster_known_class" in kept.uns["scdcc"]["history"]
    assert kept.uns["scdcc"]["init_method"] == "known class means"
    # class code i (categories sorted: a, b, c) is cluster i, as uns says
    codes = pd.Categorical(known[labelled]).codes.astype(str)
    np.testing.assert_array_equal(kept.obs["scdcc"].to_numpy()[labelled], codes)
    assert list(kept.uns["scdcc"]["label_classes"]) == ["a", "b", "c"]
    # the soft assignments stay as trained, the unlabelled cells follow them
    probs = kept.obsm["scdcc_probs"]
    np.testing.assert_array_equal(
        probs[~labelled].argmax(1).astype(str), kept.obs["scdcc"].to_numpy()[~labelled]
    )
    reported = kept.obs["scdcc"].cat.codes.to_numpy()
    np.testing.assert_allclose(  # the confidence is that of the reported cluster
        kept.obs["scdcc_confidence"], probs[np.arange(sim.n_obs), reported]
    )

    free = sdc.tl.scdcc(sim, 3, label_key="known", keep_labels=False, copy=True, **FAST)
    np.testing.assert_array_equal(
        free.obsm["scdcc_probs"].argmax(1).astype(str), free.obs["scdcc"].to_numpy()
    )

    # numbers as labels: their clusters are read from uns, not from the numbers, and follow
    # the numbers' order (not the text's, where "11" comes before "6")
    sim.obs["known"] = known.map({"a": 6, "b": 11, "c": 1}).astype("Int64")
    numbered = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **FAST)
    classes = list(numbered.uns["scdcc"]["label_classes"])
    assert classes == ["1", "6", "11"]
    cluster_of_label = numbered.obs["scdcc"].astype(int).to_numpy()[labelled]
    np.testing.assert_array_equal(
        np.asarray(classes)[cluster_of_label], sim.obs["known"][labelled].astype(int).astype(str)
    )


def test_known_class_term_pulls_labelled_cells_to_their_class(sim):
    """Against the data's own groups, a heavier known-class term moves more of the labelled
    cells (and their neighbours in the latent space) to the cluster of their class."""
    known, labelled = _random_known_classes(sim, 0.2, seed=1)
    sim.obs["known"] = known
    codes = pd.Categorical(known[labelled]).codes.astype(str)
    # without the classifier prior, which pulls towards the known classes too
    kw = dict(
        pretrain_epochs=10, max_epochs=20, tol=0, progress=False, batch_size=64, label_prior=0.0
    )
    agree = {}
    for weight in (0.0, 30.0):
        out = sdc.tl.scdcc(
            sim, 3, label_key="known", label_weight=weight, keep_labels=False, copy=True, **kw
        )
        assert ("cluster_known_class" in out.uns["scdcc"]["history"]) == (weight > 0)
        agree[weight] = np.mean(out.obs["scdcc"].to_numpy()[labelled] == codes)
    assert agree[30.0] > agree[0.0] + 0.2, agree


def test_known_class_loss_is_the_log_assignment_to_the_class():
    import torch

    from scdeepclust.nn import known_class_loss

    q = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    expected = -(np.log(0.2) + np.log(0.8)) / 2
    assert float(known_class_loss(q, torch.tensor([1, 2]))) == pytest.approx(expected, rel=1e-6)


def test_target_refresh_default_is_capped_in_steps_on_large_data():
    from scdeepclust.train import ClusteringStage, _loops

    stage = ClusteringStage(max_epochs=5, batch_size=256, tol=1e-3)
    assert stage.refresh_every(100) == 100  # an epoch when it is short
    assert stage.refresh_every(10 * _loops.REFRESH_MAX_STEPS) == _loops.REFRESH_MAX_STEPS
    assert ClusteringStage(5, 256, 1e-3, update_interval=0.5).refresh_every(100) == 50


def test_target_refreshes_within_epochs_when_epochs_are_long(sim, monkeypatch):
    from scdeepclust.train import _loops

    monkeypatch.setattr(_loops, "REFRESH_MAX_STEPS", 2)
    sdc.tl.scdcc(sim, 3, **{**FAST, "max_epochs": 2, "tol": 0.0})
    refreshed_at = sim.uns["scdcc"]["history"]["cluster_label_change_epoch"]
    n_batches = -(-sim.n_obs // FAST.get("batch_size", 256))
    np.testing.assert_allclose(np.diff(refreshed_at), 2 / n_batches)


def test_clustering_epoch_cap_keeps_the_step_budget_on_large_data():
    from scdeepclust.models import SCDCCConfig
    from scdeepclust.models._desc import DESCConfig

    assert SCDCCConfig().resolved_max_epochs(4_000) == 300
    assert SCDCCConfig().resolved_max_epochs(1_000_000) == 6
    assert SCDCCConfig(max_epochs=50).resolved_max_epochs(1_000_000) == 50
    assert DESCConfig().resolved_max_epochs(100_000) == 100
    assert DESCConfig().resolved_max_epochs(1_000_000) == 10


def test_default_pretraining_gives_small_data_the_steps_of_larger_data():
    from scdeepclust.data import minibatch_count
    from scdeepclust.models import SCDCCConfig
    from scdeepclust.models._scdcc import MAX_FLOOR_PRETRAIN_EPOCHS, MIN_PRETRAIN_STEPS

    config = SCDCCConfig()
    assert config.resolved_pretrain_epochs(4_271) == 40  # where the 40 epochs were measured
    # 2,049 and 4,097 cells: the feeder merges a last minibatch of one row into the one before
    for n_obs in (1_800, 2_000, 2_049, 2_746, 4_000, 4_097):
        steps_per_epoch = minibatch_count(n_obs, config.batch_size)
        steps = config.resolved_pretrain_epochs(n_obs) * steps_per_epoch
        assert MIN_PRETRAIN_STEPS <= steps < MIN_PRETRAIN_STEPS + steps_per_epoch
    # the floor stops at a bounded number of epochs on tiny data
    for n_obs in (100, 500, 1_000):
        assert config.resolved_pretrain_epochs(n_obs) == MAX_FLOOR_PRETRAIN_EPOCHS
    # beyond 100,000 cells the epochs still fall so that the steps stay the same
    assert config.resolved_pretrain_epochs(1_000_000) == 4
    assert SCDCCConfig(pretrain_epochs=7).resolved_pretrain_epochs(500) == 7
    small = SCDCCConfig(batch_size=64).resolved_pretrain_epochs(2_000)
    assert small * minibatch_count(2_000, 64) >= MIN_PRETRAIN_STEPS


def test_pretrain_balance_defaults_on_with_a_given_cluster_count(sim):
    kw = dict(FAST, max_epochs=2, copy=True)
    given_k = sdc.tl.scdcc(sim, 3, **kw)
    uniform = sdc.tl.scdcc(sim, 3, pretrain_balance=0.0, **kw)
    by_resolution = sdc.tl.scdcc(sim, resolution=0.3, **kw)
    searched = sdc.tl.scdcc(sim, (2, 4), **kw)  # measured to choose fewer clusters with it
    assert given_k.uns["scdcc"]["params"]["pretrain_balance"] == 0.5
    assert uniform.uns["scdcc"]["params"]["pretrain_balance"] == 0.0
    assert by_resolution.uns["scdcc"]["params"]["pretrain_balance"] == 0.0
    assert searched.uns["scdcc"]["params"]["pretrain_balance"] == 0.0
    # the draws differ, so does the pretraining
    assert not np.array_equal(
        given_k.uns["scdcc"]["history"]["pretrain_zinb"],
        uniform.uns["scdcc"]["history"]["pretrain_zinb"],
    )


def test_plateau_rule_only_reads_the_loss_of_uniform_draws(sim, monkeypatch):
    import scdeepclust.models._scdcc as scdcc_module

    class StopAtOnce:
        def update(self, loss):
            return True

    monkeypatch.setattr(scdcc_module, "PlateauStopper", StopAtOnce)
    kw = dict(max_epochs=1, progress=False, batch_size=64, copy=True)
    balanced = sdc.tl.scdcc(sim, 3, **kw)  # a given k draws balanced
    uniform = sdc.tl.scdcc(sim, 3, pretrain_balance=0.0, **kw)
    assert balanced.uns["scdcc"]["params"]["pretrain_balance"] == 0.5
    n_default = scdcc_module.SCDCCConfig(batch_size=64).resolved_pretrain_epochs(sim.n_obs)
    assert len(balanced.uns["scdcc"]["history"]["pretrain_zinb"]) == n_default
    assert len(uniform.uns["scdcc"]["history"]["pretrain_zinb"]) == 1


def test_tol_default_is_stricter_with_prior_knowledge(sim):
    kw = dict(FAST, max_epochs=30, copy=True)
    plain = sdc.tl.scdcc(sim, 3, **kw)
    known = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 5 == 0)
    sim.obs["known"] = known
    labelled = sdc.tl.scdcc(sim, 3, label_key="known", **kw)
    explicit = sdc.tl.scdcc(sim, 3, tol=0.2, **kw)
    for out, tol in ((plain, 0.005), (labelled, 0.001), (explicit, 0.2)):
        uns = out.uns["scdcc"]
        assert uns["params"]["tol"] == tol
        change = np.asarray(uns["history"]["cluster_label_change"])
        # the stage stops at the first refresh below tol, not before
        assert np.all(change[:-1] >= tol)
        if uns["converged"]:
            assert change[-1] < tol


def test_balance_changes_the_target(sim):
    kw = dict(FAST, max_epochs=6, tol=0.0, copy=True)
    dec = sdc.tl.scdcc(sim, 3, **kw)
    free = sdc.tl.scdcc(sim, 3, balance=0.0, **kw)
    assert free.uns["scdcc"]["params"]["balance"] == 0.0
    assert dec.uns["scdcc"]["params"]["balance"] == 1.0
    # same pretraining, different clustering stage
    np.testing.assert_array_equal(
        dec.uns["scdcc"]["history"]["pretrain_zinb"], free.uns["scdcc"]["history"]["pretrain_zinb"]
    )
    assert not np.array_equal(dec.obsm["X_scdcc"], free.obsm["X_scdcc"])


def test_placeholder_labels_are_counted_over_every_form_of_the_text():

    from scdeepclust.tl._validate import warn_if_placeholder_labels

    values = ["T"] * 5 + ["nan"] * 3 + [" Unknown"] * 2 + ["unknown"] * 2 + [None] * 4
    labels = pd.Categorical(values, categories=["T", "nan", " Unknown", "unknown", "unused"])
    adata = ad.AnnData(obs=pd.DataFrame({"known": labels}, index=[str(i) for i in range(16)]))
    with pytest.warns(UserWarning, match=r"labels cells 'nan' \(3 cells\), ' Unknown' \(2 cells\)"):
        warn_if_placeholder_labels(adata, "known")
    # NaN made text by astype(str) on a categorical column: the advice is code to paste as is
    adata.obs["known"] = pd.Series(labels, index=adata.obs_names).where(labels == "T").astype(str)
    with pytest.warns(UserWarning) as caught:
        warn_if_placeholder_labels(adata, "known")
    said = str(caught[0].message)
    assert "labels cells 'nan' (11 cells)" in said and "== 'nan')" in said, said
    assert "np.str_" not in said
    checked = [
        [1, 1, "1", 2.5] + [np.nan] * 12,  # no placeholder among them
        # a placeholder category holding no cell, as subsetting leaves one
        pd.Categorical(["T"] * 4 + [None] * 12, categories=["T", "unknown"]),
    ]
    for labels in checked:
        adata.obs["known"] = labels
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warn_if_placeholder_labels(adata, "known")
    # pd.NA made text ('<NA>') and R's missing value exported as text ('NA')
    for text in ["<NA>", "NA"]:
        adata.obs["known"] = ["T"] * 15 + [text]
        with pytest.warns(UserWarning, match=rf"labels cells '{text}' \(1 cell\):"):
            warn_if_placeholder_labels(adata, "known")


def test_warnings_name_the_users_line_and_scanpy_speaks_only_of_the_users_object(sim, capfd):
    # More labelled classes than n_clusters: the warning named a line inside the package. At
    # verbosity 2+, scanpy reported keys added to the package's own temporary objects.
    import scanpy as sc

    sim.obs["known"] = sim.obs["group"].astype(str).where(np.arange(sim.n_obs) % 3 == 0)
    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 3
    try:
        with pytest.warns(UserWarning, match="more than n_clusters=2") as caught:
            sdc.tl.scdcc(sim, 2, label_key="known", copy=True, **FAST)
    finally:
        sc.settings.verbosity = verbosity
    assert [w.filename for w in caught if "n_clusters=2" in str(w.message)] == [__file__]
    said = capfd.readouterr().err
    assert "uns['neighbors']" not in said and "'leiden', the cluster labels" not in said


def test_progress_bars_into_a_log_are_redrawn_seldom(monkeypatch):
    # Written into a file, a bar wrote a frame per epoch (hundreds per run).
    import io
    import sys

    import torch

    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import _loops

    feeder = CellFeeder(RowSource(np.zeros((4, 2), np.float32)), device=torch.device("cpu"))
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file, not a terminal
    bar = _loops._epoch_bar(0, 10, "stage", True, feeder)
    assert bar.mininterval == _loops.LOG_REDRAW_SECONDS
    assert not bar.disable
    bar.close()


def test_progress_bars_stay_hidden_at_scanpy_verbosity_0():
    """Errors only, as scanpy's own bars (sc.tl.umap's) are then."""
    import torch

    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import _loops

    feeder = CellFeeder(RowSource(np.zeros((4, 2), np.float32)), device=torch.device("cpu"))
    before = sc.settings.verbosity
    try:
        sc.settings.verbosity = 0
        assert isinstance(_loops._epoch_bar(0, 10, "stage", True, feeder), _loops._NoBar)
        sc.settings.verbosity = 1
        shown = _loops._epoch_bar(0, 10, "stage", True, feeder)
        assert not shown.disable
        shown.close()
        # no tqdm at all: a disabled one starts tqdm's monitor thread all the same
        hidden = _loops._epoch_bar(3, 10, "stage", False, feeder)
        assert isinstance(hidden, _loops._NoBar) and list(hidden) == list(range(3, 10))
        hidden.set_postfix(loss="1")
    finally:
        sc.settings.verbosity = before


@pytest.mark.parametrize("dtype", [np.float16, ">f4"])
def test_n_top_genes_of_a_backed_dense_matrix_of_float16_or_another_byte_order(
    sim, dtype, tmp_path
):
    # read from the file block by block, each block went to scipy's sparse matrix as it was:
    # "scipy.sparse does not support dtype float16"; in memory the same matrix worked

    adata = sc.AnnData(sim.layers["counts"].toarray().astype(dtype), obs=sim.obs)
    adata.write_h5ad(tmp_path / "dense.h5ad")
    backed = ad.read_h5ad(tmp_path / "dense.h5ad", backed="r")
    in_memory = sdc.tl.scdcc(adata, 3, n_top_genes=50, copy=True, **FAST)
    sdc.tl.scdcc(backed, 3, n_top_genes=50, **FAST)
    genes = in_memory.uns["scdcc"]["genes_used"]
    np.testing.assert_array_equal(backed.uns["scdcc"]["genes_used"], genes)
    np.testing.assert_array_equal(backed.obs["scdcc"], in_memory.obs["scdcc"])


def test_plateau_stopper_counts_epochs_without_a_relative_improvement():
    """Stops after `patience` epochs in a row that improved the best loss by no more than
    `min_rel_delta` of it. Kills P1 (stops one epoch late: `>` patience) and P2
    (min_rel_delta ignored: any improvement resets the count)."""
    from scdeepclust.train import PlateauStopper

    stopper = PlateauStopper(patience=2, min_rel_delta=0.1)
    assert not stopper.update(10.0)
    assert not stopper.update(9.5)  # 5% better: not enough, 1 epoch without improvement
    assert stopper.update(9.2)  # 2 epochs: stop
    stopper = PlateauStopper(patience=2, min_rel_delta=0.1)
    assert [stopper.update(loss) for loss in (10.0, 8.0, 7.9, 6.0, 6.0, 6.0)] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_default_epochs_fall_with_the_cells_between_the_minimum_and_the_base():
    """base * reference / n, within [minimum, base]: on millions of cells the minimum, never 0.
    Kills P3 (the minimum dropped: 0 epochs at 10 million cells)."""
    from scdeepclust.train import default_epochs

    kw = dict(base=25, reference_cells=100_000, minimum=2)
    assert default_epochs(1_000, **kw) == 25
    assert default_epochs(400_000, **kw) == 6
    assert default_epochs(10_000_000, **kw) == 2
    assert default_epochs(0, **kw) == 25


def test_a_tiny_update_interval_refreshes_the_target_every_step():
    """update_interval * n_batches below one step rounds up to 1, not to 0 (a modulo by zero in
    the stage). Kills P7 (`max(1, ...)` dropped)."""
    from scdeepclust.train import ClusteringStage

    assert ClusteringStage(5, 256, 1e-3, update_interval=0.001).refresh_every(100) == 1
    assert ClusteringStage(5, 256, 1e-3, update_interval=0.004).refresh_every(100) == 1


def test_n_top_genes_of_every_gene_selects_none(sim):
    """n_top_genes as large as the number of genes leaves none out: no selection runs, and
    uns records no `genes_used` (kept for runs that left some out)."""
    out = sdc.tl.scdcc(sim, 3, n_top_genes=sim.n_vars, copy=True, **ONE_EPOCH)
    assert "genes_used" not in out.uns["scdcc"]
    assert out.uns["scdcc"]["params"]["n_top_genes"] == sim.n_vars


def test_pairs_drawn_from_labels_follow_random_state(sim, monkeypatch):
    """The must-link / cannot-link pairs drawn from `label_key` come from `random_state`: the
    same seed draws the same pairs, another seed others."""
    import scdeepclust.tl._scdcc as scdcc_module

    class Drawn(Exception):
        pass

    drawn = []

    def capture(feeder, config, constraints, *args, **kwargs):
        drawn.append(constraints)
        raise Drawn  # the pairs are all this test needs: no training

    monkeypatch.setattr(scdcc_module, "fit_scdcc", capture)
    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    for seed in (0, 0, 1):
        with pytest.raises(Drawn):
            sdc.tl.scdcc(sim, 3, label_key="known", n_pairs=50, random_state=seed, **FAST)
    first, again, other = drawn
    np.testing.assert_array_equal(first.must_link, again.must_link)
    np.testing.assert_array_equal(first.cannot_link, again.cannot_link)
    assert not (
        np.array_equal(first.must_link, other.must_link)
        and np.array_equal(first.cannot_link, other.cannot_link)
    )


def test_pairs_drawn_from_labels_default_to_a_hundred_per_labelled_cell(sim, monkeypatch):
    """Without `n_pairs`, DEFAULT_PAIRS_PER_LABELLED_CELL pairs are drawn per labelled cell:
    the unlabelled cells take part in no pair, so they do not count."""
    import scdeepclust.tl._scdcc as scdcc_module

    class Drawn(Exception):
        pass

    asked = []
    draw = scdcc_module.pairs_from_labels

    def spy(labels, n, rng):
        asked.append(n)
        return draw(labels, n, rng)

    def stop(*args, **kwargs):
        raise Drawn  # the number of pairs is all this test needs: no training

    monkeypatch.setattr(scdcc_module, "pairs_from_labels", spy)
    monkeypatch.setattr(scdcc_module, "fit_scdcc", stop)
    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    with pytest.raises(Drawn):
        sdc.tl.scdcc(sim, 3, label_key="known", **FAST)
    assert asked == [scdcc_module.DEFAULT_PAIRS_PER_LABELLED_CELL * (sim.n_obs // 4)]


def test_no_cluster_is_named_after_a_class_where_the_classes_did_not_start_them(sim):
    """`label_classes` (cluster i started at class i) is recorded only where the known classes
    started the clusters: where they outnumber the clusters k-means starts them, and no
    cluster is any class's."""
    with_known_labels(sim)
    with pytest.warns(UserWarning, match="more than n_clusters=2"):
        out = sdc.tl.scdcc(sim, 2, label_key="known", copy=True, **ONE_EPOCH)
    assert out.uns["scdcc"]["init_method"].startswith("kmeans")
    assert "label_classes" not in out.uns["scdcc"]


def test_labels_on_every_cell_that_are_kept_are_warned_about(sim):
    """Every cell labelled and the labels kept: the result was the labels, without a word."""
    sim.obs["known"] = sim.obs["group"].astype(str)
    short = dict(pretrain_epochs=1, max_epochs=1, progress=False, copy=True)
    with pytest.warns(UserWarning, match=r"labels every cell, and labelled cells keep their lab"):
        out = sdc.tl.scdcc(sim, 3, label_key="known", **short)
    assert pd.crosstab(out.obs["scdcc"], out.obs["known"]).gt(0).sum().eq(1).all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdc.tl.scdcc(sim, 3, label_key="known", keep_labels=False, **short)
    assert not [w for w in caught if "labels every cell" in str(w.message)]
    # 'unknown' marking the unlabelled cells: one warning, about that text
    sim.obs["known"] = sim.obs["known"].where(sim.obs["known"] != "0", "unknown")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdc.tl.scdcc(sim, 3, label_key="known", **short)
    said = [str(w.message) for w in caught]
    assert any("'unknown'" in m for m in said) and not any("labels every cell" in m for m in said)


def test_the_known_class_term_is_weighed_by_label_weight(sim):
    known, _ = _random_known_classes(sim, 0.2, seed=1)
    sim.obs["known"] = known
    out = sdc.tl.scdcc(sim, 3, label_key="known", label_weight=1e-3, copy=True, **FAST)
    term = np.asarray(out.uns["scdcc"]["history"]["cluster_known_class"])
    # the log assignment to the class (about 1 here) times the weight
    assert len(term) and (term > 0).all() and (term < 1e-2).all()


def test_placeholder_labels_advice_makes_the_most_frequent_one_missing():

    from scdeepclust.tl._validate import warn_if_placeholder_labels

    labels = ["T"] * 4 + ["unknown"] + ["NA"] * 3
    adata = ad.AnnData(obs=pd.DataFrame({"known": labels}, index=[str(i) for i in range(8)]))
    with pytest.warns(UserWarning) as caught:
        warn_if_placeholder_labels(adata, "known")
    said = str(caught[0].message)
    assert "labels cells 'NA' (3 cells), 'unknown' (1 cell)" in said
    assert "astype(str) == 'NA')`" in said, said


def test_a_stage_that_stops_early_clears_its_bar_before_saying_so(monkeypatch):
    """The break left the bar open, and the "loss plateaued" line was printed onto its line."""
    import io
    import sys

    import torch

    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import PlateauStopper, sgd
    from scdeepclust.train._loops import fit_epochs

    feeder = CellFeeder(RowSource(np.zeros((8, 1), np.float32)), device=torch.device("cpu"))
    w = torch.nn.Parameter(torch.zeros(1))
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)  # where tqdm draws
    before, logfile = sc.settings.verbosity, sc.settings.logfile
    sc.settings.verbosity, sc.settings.logfile = 3, terminal
    try:
        fit_epochs(
            feeder,
            lambda batch: {"loss": (w * 0).sum() + 1.0},
            sgd([w], lr=0.1, momentum=0.0),
            n_epochs=10,
            batch_size=4,
            rng=np.random.default_rng(0),
            stopper=PlateauStopper(patience=3),
        )
    finally:
        sc.settings.verbosity, sc.settings.logfile = before, logfile
    said = terminal.getvalue()
    line = [part for part in re.split(r"[\r\n]", said) if "plateaued" in part]
    assert line and line[0].strip().startswith("pretraining: loss plateaued"), said


def test_the_initial_weights_follow_random_state(sim, monkeypatch):
    """Kills S2: the layers' initial weights are drawn from `random_state` (the same seed,
    the same weights; another seed, other weights), as DESC's are."""
    import scdeepclust.models._scdcc as scdcc_model

    built = []
    build = scdcc_model.initial_network

    def recorded(*args, **kwargs):
        network = build(*args, **kwargs)
        built.append(torch.cat([p.detach().flatten().clone() for p in network.parameters()]))
        return network

    monkeypatch.setattr(scdcc_model, "initial_network", recorded)
    short = dict(FAST, pretrain_epochs=1, max_epochs=1)
    for seed in (1, 1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # one epoch does not converge
            sdc.tl.scdcc(sim, 3, random_state=seed, copy=True, **short)
    assert len(built) == 3
    assert torch.equal(built[0], built[1])
    assert not torch.equal(built[0], built[2])


def test_init_without_n_clusters_is_named_also_with_label_key_and_resolution(sim):
    # label_key with resolution (no n_clusters): Leiden clusters and `init` starts nothing, so
    # the generic warning must still be given (mutant S01 skipped it whenever label_key was set)
    with_known_labels(sim)
    with pytest.warns(UserWarning, match=r"init='kmeans' has no effect without `n_clusters`"):
        sdc.tl.scdcc(sim, label_key="known", resolution=0.5, init="kmeans", copy=True, **ONE_EPOCH)


def test_n_pairs_with_a_label_key_only_is_not_called_unused(sim):
    # n_pairs acts with label_key alone (or protein_key alone): mutant S08 ('or') warned there
    with_known_labels(sim)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sdc.tl.scdcc(sim, 3, label_key="known", n_pairs=50, copy=True, **ONE_EPOCH)
    assert not any("n_pairs=50 has no effect" in str(w.message) for w in caught)
    assert out.uns["scdcc"]["params"]["n_pairs"] == 50


def test_update_interval_and_gamma_reach_the_clustering_stage(sim, monkeypatch):
    # mutant S23 dropped update_interval between tl.scdcc and SCDCCConfig (refresh every
    # epoch); M16 left gamma out of the stage: the KL term kept weight 1 whatever the user gave
    # (params still recorded the given gamma)
    import scdeepclust.models._scdcc as scdcc_model

    seen = record_keyword(
        monkeypatch, scdcc_model, "ClusteringStage", "update_interval", "clustering_weight"
    )
    out = sdc.tl.scdcc(sim, 3, update_interval=0.5, gamma=0.25, copy=True, **ONE_EPOCH)
    assert seen == [(0.5, 0.25)]
    assert out.uns["scdcc"]["params"]["update_interval"] == 0.5


def test_params_record_the_label_key(sim):
    # mutant S34 left label_key out of uns['scdcc']['params'] (and so of a saved model's config)
    with_known_labels(sim)
    out = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **ONE_EPOCH)
    assert out.uns["scdcc"]["params"]["label_key"] == "known"


def test_n_top_genes_are_chosen_on_counts_normalised_to_10000(sim):
    # documented: 'seurat' flavour on counts normalised to 10,000 per cell and log1p
    # (mutant S46 normalised to the median total, which chose other genes)
    import scanpy as sc

    expected = sim.copy()
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    table = sc.pp.highly_variable_genes(expected, n_top_genes=60, flavor="seurat", inplace=False)
    chosen = set(sim.var_names[table["highly_variable"].to_numpy()])
    out = sdc.tl.scdcc(sim, 3, n_top_genes=60, copy=True, **ONE_EPOCH)
    assert set(out.uns["scdcc"]["genes_used"]) == chosen


def test_known_labels_without_acting_pairs_are_still_prior_knowledge(sim):
    # label_key with both pair weights 0: the known classes still place the centroids and keep
    # their cells, so tol is the stricter 0.001 and refine is off (mutant M10 counted only the
    # pairs as prior knowledge: tol 0.005 and the refinement moved labelled cells)
    with_known_labels(sim)
    out = sdc.tl.scdcc(sim, 3, label_key="known", ml_weight=0, cl_weight=0, copy=True, **ONE_EPOCH)
    params = out.uns["scdcc"]["params"]
    assert params["tol"] == 0.001
    assert params["refine"] == 0.0
    assert "refinement" not in out.uns["scdcc"]


# M117, M118, M120
@pytest.mark.parametrize(
    ("n_cells", "per_cell", "warns"), [(90, 5, False), (200, 3, False), (120, 5, True)]
)
def test_binary_counts_are_judged_from_500_values_and_5_per_cell(n_cells, per_cell, warns):
    """Only 0s and 1s are told to be binarised from max(500, 5 per cell) ones: shallower counts
    can hold only 1s."""
    from scdeepclust.pp._input import scan_matrix, warn_if_binary

    rng = np.random.default_rng(0)
    counts = np.zeros((n_cells, 30))
    for row in counts:
        row[rng.choice(30, per_cell, replace=False)] = 1
    summary = scan_matrix(counts, steps=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warn_if_binary(summary, "X")
    assert len(record) == int(warns)


def test_a_layer_of_text_beside_the_counts_does_not_hide_the_advice(sim):
    """layers_holding_counts passes over a layer whose dtype holds no counts (scan_matrix's
    TypeError), and still names the layer of counts."""
    sim.layers["raw_counts"] = sim.layers.pop("counts")
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.layers["text"] = np.full(sim.shape, "a", dtype=object)
    with pytest.raises(ValueError, match=r"adata\.layers\['raw_counts'\] holds counts: pass"):
        sdc.tl.scdcc(sim, 3, **FAST)


def test_a_layer_of_counts_in_the_genes_read_is_named_though_other_genes_hold_anything(sim):
    """With mask_var only the genes read are judged: a layer that holds counts there (and
    anything in the other genes) is named as the one to read."""
    sim.layers["raw_counts"] = sim.layers.pop("counts").astype(np.float32)
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    dense = (
        sim.layers["raw_counts"].toarray()
        if hasattr(sim.layers["raw_counts"], "toarray")
        else np.array(sim.layers["raw_counts"])
    )
    dense[:, -1] = 0.5  # the gene left out holds no counts
    sim.layers["raw_counts"] = dense
    mask = np.ones(sim.n_vars, dtype=bool)
    mask[-1] = False
    with pytest.raises(ValueError, match=r"adata\.layers\['raw_counts'\] holds counts: pass"):
        sdc.tl.scdcc(sim, 3, mask_var=mask, **FAST)


def test_a_layer_named_by_the_caller_is_refused_without_naming_other_layers(sim):
    """Where `layer` names the matrix, that is the caller's choice: its refusal is the usual
    one (the other layers are neither scanned nor named)."""
    sim.layers["raw_counts"] = sim.layers.pop("counts")
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.layers["lognorm"] = sim.X.copy()
    with pytest.raises(ValueError, match=r"adata\.layers\['lognorm'\] does not hold") as error:
        sdc.tl.scdcc(sim, 3, layer="lognorm", **FAST)
    assert "raw_counts" not in str(error.value)
