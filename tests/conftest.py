import pytest

import scdeepclust as sdc


@pytest.fixture
def sim():
    """Small, well-separated simulated counts with 3 known groups."""
    return sdc.datasets.simulate(
        n_cells=240, n_genes=120, n_groups=3, de_fraction=0.3, de_log_fold=2.0, random_state=1
    )
