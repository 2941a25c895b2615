"""Runs in several threads of one process give what each gives alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import scanpy as sc
import torch

import scdeepclust as sdc
from _helpers import TEST_DEVICE

SHORT = dict(pretrain_epochs=4, max_epochs=4, progress=False, batch_size=64, device=TEST_DEVICE)


def _inputs(tool):
    inputs = []
    for seed in (1, 2):
        adata = sdc.datasets.simulate(
            n_cells=240, n_genes=120, n_groups=3, de_log_fold=2.0, random_state=seed
        )
        if tool == "desc":
            sc.pp.normalize_total(adata)
            sc.pp.log1p(adata)
        inputs.append(adata)
    return inputs


def _run(tool, adata):
    fn = sdc.tl.desc if tool == "desc" else sdc.tl.scdcc
    return fn(adata, n_clusters=3, copy=True, **SHORT)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_runs_in_two_threads_at_once_give_what_each_gives_alone(tool):
    # Both drew from torch's one global generator, seeded by each run: the layers' initial
    # weights and DESC's dropout took the other run's draws (simulated 3 groups: other labels in
    # 3 of 3 tries, scDCC sometimes a single cluster), and the caller's generator state was
    # sometimes not restored.
    inputs = _inputs(tool)
    alone = [_run(tool, adata) for adata in inputs]
    torch.manual_seed(123)
    caller_state = torch.random.get_rng_state()
    for _ in range(2):
        together: list = [None, None]
        start = threading.Barrier(2)

        def work(i, start, together):
            start.wait()
            together[i] = _run(tool, inputs[i])

        threads = [threading.Thread(target=work, args=(i, start, together)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for got, want in zip(together, alone):
            np.testing.assert_array_equal(got.obsm[f"X_{tool}"], want.obsm[f"X_{tool}"])
            np.testing.assert_array_equal(got.obs[tool], want.obs[tool])
    assert torch.equal(torch.random.get_rng_state(), caller_state)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_draws_from_torchs_global_generator_while_a_run_builds_its_layers_change_nothing(
    tool, monkeypatch
):
    """Another thread's `torch.rand` while a run built its layers took one of the run's seeded
    draws (the same random_state, other weights and labels), and the run's restore of the
    global generator gave that thread its draws again. The draw is made here inside the
    build, where another thread's would land."""
    from scdeepclust import nn as sdc_nn

    network = {"desc": sdc_nn.StackedAutoencoder, "scdcc": sdc_nn.ZINBAutoencoder}[tool]
    adata = _inputs(tool)[0]
    alone = _run(tool, adata)
    torch.manual_seed(5)
    stream = torch.rand(16)
    drawn = []
    build = network.__init__

    def drawing_meanwhile(self, *args, **kwargs):
        drawn.append(torch.rand(8, device="cpu"))
        build(self, *args, **kwargs)

    monkeypatch.setattr(network, "__init__", drawing_meanwhile)
    torch.manual_seed(5)
    meanwhile = _run(tool, adata)
    after = torch.rand(8)
    torch.testing.assert_close(drawn[0], stream[:8], rtol=0, atol=0)
    torch.testing.assert_close(after, stream[8:], rtol=0, atol=0)
    np.testing.assert_array_equal(meanwhile.obsm[f"X_{tool}"], alone.obsm[f"X_{tool}"])
    np.testing.assert_array_equal(meanwhile.obs[tool], alone.obs[tool])


def test_process_wide_settings_come_back_when_the_last_run_in_any_thread_ends():
    # Each run restored what it found: one ending inside another's run handed it the caller's
    # float64 default dtype or "medium" matmul precision, and one starting inside another's
    # kept the package's setting for good.
    from scdeepclust._messages import scanpy_quiet
    from scdeepclust.train import standard_torch_mode

    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 3
    torch.set_float32_matmul_precision("medium")
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with standard_torch_mode(), scanpy_quiet():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with standard_torch_mode(), scanpy_quiet():
            second_in.set()
            first_out.wait(10)
            seen["inside"] = (torch.get_float32_matmul_precision(), int(sc.settings.verbosity))

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert seen["inside"] == ("highest", 3)  # scanpy's verbosity is left to the caller
        assert torch.get_float32_matmul_precision() == "medium"
        assert int(sc.settings.verbosity) == 3
    finally:
        torch.set_float32_matmul_precision("highest")
        sc.settings.verbosity = verbosity


def test_a_setting_interrupted_as_it_is_set_comes_back():
    """Ctrl-C landing just as the package set its value left it for the rest of the process."""
    from scdeepclust._process import ProcessWideOverride

    value = {"now": "caller's"}
    interruptions = [KeyboardInterrupt]

    def set_then_interrupted(new):
        value["now"] = new
        if new == "package's" and interruptions:
            raise interruptions.pop()

    override = ProcessWideOverride(
        lambda: value["now"], set_then_interrupted, lambda saved: "package's"
    )
    with pytest.raises(KeyboardInterrupt), override():
        pass
    assert value["now"] == "caller's" and override._open == 0
    with override():  # and the next block still sets and restores it
        assert value["now"] == "package's"
    assert value["now"] == "caller's"


def test_warnings_ignored_in_overlapping_blocks_leave_the_filters_as_they_were():
    # warnings.catch_warnings restores the whole filter list it saved: blocks of two threads
    # closing out of order left one's "ignore" for good and dropped a filter set meanwhile.
    import warnings

    from scipy.sparse import SparseEfficiencyWarning

    from scdeepclust._process import ignoring_warnings

    with warnings.catch_warnings():  # the test's own, in this thread alone
        warnings.simplefilter("always")
        before = list(warnings.filters)
        first, second = (
            ignoring_warnings(SparseEfficiencyWarning),
            ignoring_warnings(SparseEfficiencyWarning),
        )
        first.__enter__()
        second.__enter__()
        warnings.filterwarnings("error", message="the user's, set meanwhile")
        users = warnings.filters[0]
        first.__exit__(None, None, None)
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("still ignored", SparseEfficiencyWarning, stacklevel=1)
        assert not seen  # the second block is still open
        second.__exit__(None, None, None)
        assert warnings.filters == [users, *before]
        with pytest.warns(SparseEfficiencyWarning):
            warnings.warn("shown again", SparseEfficiencyWarning, stacklevel=1)


def test_scanpy_is_quieted_in_the_runs_thread_alone():
    # The package lowered scanpy's verbosity, the process's, while it ran scanpy on its own
    # temporary objects: the caller's scanpy calls in other threads lost their messages, and a
    # verbosity set meanwhile was undone when the run ended.
    import io

    from scdeepclust._messages import scanpy_quiet

    verbosity, logfile = sc.settings.verbosity, sc.settings.logfile
    log = io.StringIO()
    sc.settings.verbosity, sc.settings.logfile = 3, log
    inside, logged = threading.Event(), threading.Event()

    def run():
        with scanpy_quiet():
            sc.logging.info("about the package's own object")
            sc.logging.warning("a warning of the package's thread")
            inside.set()
            logged.wait(10)

    try:
        thread = threading.Thread(target=run)
        thread.start()
        inside.wait(10)
        sc.logging.info("the caller's own step")
        sc.settings.verbosity = 4  # set while the run is open
        logged.set()
        thread.join()
        said = log.getvalue()
        assert "the caller's own step" in said and "a warning of the package's thread" in said
        assert "the package's own object" not in said
        assert int(sc.settings.verbosity) == 4
        sc.logging.info("after the run")  # nothing is left dropping this thread's messages
        assert "after the run" in log.getvalue()
    finally:
        sc.settings.verbosity, sc.settings.logfile = verbosity, logfile


def test_the_callers_equal_filter_stays_and_a_filter_put_back_is_swept_out():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from scdeepclust._process import ignoring_warnings

    def ours(category):
        return [f for f in warnings.filters if f[2] is category and f[0] == "ignore"]

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # the caller sets the same filter inside the package's block: theirs stays
        for append in (False, True):
            with ignoring_warnings(ConvergenceWarning):
                warnings.simplefilter("ignore", ConvergenceWarning, append=append)
            assert len(ours(ConvergenceWarning)) == 1
            warnings.filters.remove(ours(ConvergenceWarning)[0])
        # the list reset while a block is open: the next block of that filter puts it back
        with ignoring_warnings(ConvergenceWarning):
            warnings.resetwarnings()
            with ignoring_warnings(ConvergenceWarning):
                assert len(ours(ConvergenceWarning)) == 1
        assert not ours(ConvergenceWarning)
        warnings.simplefilter("always")
        # another thread's catch_warnings, open across the block's end, puts the entry back
        block = ignoring_warnings(ConvergenceWarning)
        block.__enter__()
        other_thread = warnings.catch_warnings()
        other_thread.__enter__()
        block.__exit__(None, None, None)
        other_thread.__exit__(None, None, None)
        assert len(ours(ConvergenceWarning)) == 1  # put back by the other block
        with ignoring_warnings(UserWarning):  # the package's next block sweeps it out
            pass
        assert not ours(ConvergenceWarning)


def test_kmeans_keeps_a_tighter_thread_limit_of_the_callers():
    """Two threads at most for k-means, and one where the caller (or OMP_NUM_THREADS=1, as
    torchrun sets) allows one: threadpoolctl sets the pools to the number given, raising them."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from scdeepclust._threads import KMEANS_THREADS, kmeans_thread_limit

    def openmp_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}

    if not openmp_threads():
        pytest.skip("no OpenMP pool loaded")
    with threadpool_limits(limits=1, user_api="openmp"):
        with kmeans_thread_limit():
            assert openmp_threads() == {1}
    with threadpool_limits(limits=KMEANS_THREADS + 2, user_api="openmp"):
        with kmeans_thread_limit():
            assert openmp_threads() == {KMEANS_THREADS}


def test_ignored_warnings_are_those_of_the_category_and_message_given():
    """A block ignores its own category alone, and a message by its start in any case, as
    `warnings.filterwarnings` reads one."""
    import warnings

    from scipy.sparse import SparseEfficiencyWarning

    from scdeepclust._process import ignoring_warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with ignoring_warnings(SparseEfficiencyWarning):
            warnings.warn("sparse", SparseEfficiencyWarning, stacklevel=1)
            warnings.warn("other", UserWarning, stacklevel=1)
        with ignoring_warnings(UserWarning, message="the given array"):
            warnings.warn("The given array is not writable", UserWarning, stacklevel=1)
            warnings.warn("Not the given array", UserWarning, stacklevel=1)
            warnings.warn("the given array", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["other", "Not the given array", "the given array"]


def test_nested_blocks_share_one_filter_and_a_setting_left_as_found_is_not_restored():
    """A nested block of the same filter adds no second entry; a setting already at the wanted
    value is not written back at the end, so that a value set meanwhile stays."""
    import warnings

    from scdeepclust._process import ProcessWideOverride, ignoring_warnings

    with warnings.catch_warnings(), ignoring_warnings(UserWarning):
        n_filters = len(warnings.filters)
        with ignoring_warnings(UserWarning):
            assert len(warnings.filters) == n_filters
    value = {"now": "wanted"}
    override = ProcessWideOverride(
        lambda: value["now"], lambda new: value.update(now=new), lambda saved: "wanted"
    )
    with override():
        value["now"] = "set meanwhile"
    assert value["now"] == "set meanwhile"


def test_scanpy_speaks_again_in_the_thread_whose_block_ended_and_beside_other_filters():
    """After its block, the same thread's info messages are logged again; a filter of the
    user's on scanpy's logger does not keep the package's out; without scanpy's logger the
    verbosity is held at warnings (1) inside the block."""
    import io
    import logging
    import types

    from scdeepclust._messages import _QUIET_THREADS, scanpy_quiet

    verbosity, logfile = sc.settings.verbosity, sc.settings.logfile
    log = io.StringIO()
    sc.settings.verbosity, sc.settings.logfile = 3, log
    logger = sc.settings._root_logger
    users = logging.Filter()
    logger.removeFilter(_QUIET_THREADS)
    logger.addFilter(users)
    try:
        with scanpy_quiet():
            sc.logging.info("inside the block")
        sc.logging.info("after the block")
        assert "inside the block" not in log.getvalue() and "after the block" in log.getvalue()
        # a logger scanpy's verbosity still sets, but that takes no filter
        sc.settings._root_logger = types.SimpleNamespace(setLevel=lambda level: None, handlers=[])
        with scanpy_quiet():
            assert int(sc.settings.verbosity) == 1
        assert int(sc.settings.verbosity) == 3
    finally:
        sc.settings._root_logger = logger
        logger.removeFilter(users)
        sc.settings.verbosity, sc.settings.logfile = verbosity, logfile


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="numba's pool is one thread here anyway")
def test_calls_into_scanpy_give_torch_back_the_callers_thread_count():
    """numba, which scanpy's normalisation, gene selection and UMAP run on, set OpenMP's (so
    torch's) thread count to every core as its pool started: a caller's 1 became 2 after
    `pl.umap` or `pp.recipe`, and the same tool call then trained on other threads than it
    had, its embedding different (pbmc68k_reduced: labels ARI 0.968 against the first run's)."""
    script = """
import sys
import warnings

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
warnings.simplefilter("ignore")
import scdeepclust as sdc

if sys.argv[1] == "recipe":  # numba's pool starts once in a process: each call its own
    sdc.pp.recipe(sdc.datasets.simulate(n_cells=500, n_genes=1000, random_state=0), "scdcc")
    print("recipe", torch.get_num_threads())
elif sys.argv[1] == "genes":  # scDCC's own gene selection normalises with scanpy
    adata = sdc.datasets.simulate(n_cells=500, n_genes=1000, n_groups=4, random_state=0)
    sdc.tl.scdcc(adata, 4, n_top_genes=100, pretrain_epochs=1, max_epochs=1, progress=False)
    print("genes", torch.get_num_threads())
else:
    adata = sdc.datasets.simulate(n_cells=500, n_genes=300, n_groups=4, random_state=0)
    options = dict(n_clusters=4, pretrain_epochs=3, max_epochs=2, progress=False)
    first = sdc.tl.scdcc(adata, copy=True, **options)
    sdc.pl.umap(first, "scdcc", show=False)
    print("umap", torch.get_num_threads())
    again = sdc.tl.scdcc(adata, copy=True, **options)
    print("same", np.array_equal(first.obsm["X_scdcc"], again.obsm["X_scdcc"]))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("NUMBA_NUM_THREADS", None)
    said = []
    for call in ("recipe", "genes", "umap"):
        done = subprocess.run(
            [sys.executable, "-c", script, call], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        said += done.stdout.split()
    # 1 thread, as OMP_NUM_THREADS says (torchrun and batch systems set it)
    assert said == ["recipe", "1", "genes", "1", "umap", "1", "same", "True"]


def test_torch_gets_its_thread_count_back_from_a_call_into_scanpy_that_fails():
    from scdeepclust._threads import torch_threads_kept

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="scanpy failed"):
        with torch_threads_kept():
            torch.set_num_threads(before + 1)  # as numba's pool does as it starts
            raise RuntimeError("scanpy failed")
    assert torch.get_num_threads() == before
