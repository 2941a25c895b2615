import pytest
import scanpy as sc
import torch

import scdeepclust as sdc
from _helpers import TEST_DEVICE


def pytest_report_header(config):
    auto = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return (
        f"scdeepclust: device-placement tests on {TEST_DEVICE} (SCDEEPCLUST_TEST_DEVICE); "
        f"device='auto' resolves to {auto}"
    )


_THREADS_AT_START = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _torch_threads_as_at_start():
    """scanpy's numba kernels raise torch's thread count (1 -> 2 under OMP_NUM_THREADS=1), so a
    test's speed depended on the tests before it."""
    yield
    if torch.get_num_threads() != _THREADS_AT_START:
        torch.set_num_threads(_THREADS_AT_START)


@pytest.fixture
def sim():
    """Small, well-separated simulated counts with 3 known groups."""
    return sdc.datasets.simulate(
        n_cells=240, n_genes=120, n_groups=3, de_fraction=0.3, de_log_fold=2.0, random_state=1
    )


@pytest.fixture
def scaled(sim):
    """`sim` log-normalised and scaled, dense: DESC's input."""
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.X = sim.X.toarray()
    sc.pp.scale(sim)
    return sim
