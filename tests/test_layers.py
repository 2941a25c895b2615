"""The package's layers import downwards only.

The tools (`tl`) build on the models and the engine below them, never the other way round, so
that no import circle can come back.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scdeepclust"
# Everything `tl` builds on; none of it may reach back up into `tl`.
BELOW_TL = ["models", "data", "nn", "train", "pp", "constraints.py", "_results.py"]


def _modules(names: list[str]) -> list[Path]:
    files = []
    for name in names:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _imported(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, including imports inside functions."""
    # the package a relative import starts from: the module's folder (also for __init__.py)
    package = ["scdeepclust", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            # `from .. import tl` names the submodule in the alias
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", _modules(BELOW_TL), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_layers_never_import_tl(path):
    upward = sorted(
        n for n in _imported(path) if n == "scdeepclust.tl" or n.startswith("scdeepclust.tl.")
    )
    assert not upward, f"{path.relative_to(PACKAGE)} imports {upward}"


def test_the_scan_sees_relative_imports():
    # the check above would pass vacuously if relative imports were resolved wrongly
    assert "scdeepclust.models" in _imported(PACKAGE / "tl" / "_map.py")
    assert "scdeepclust.pp._input" in _imported(PACKAGE / "models" / "_trained.py")


def test_an_interrupted_first_use_says_to_restart_the_session(monkeypatch):
    import scdeepclust

    def interrupted(name, package=None):
        raise KeyboardInterrupt

    monkeypatch.delitem(vars(scdeepclust), "pl", raising=False)
    monkeypatch.setattr(scdeepclust, "importlib", SimpleNamespace(import_module=interrupted))
    with pytest.raises(KeyboardInterrupt) as stopped:
        scdeepclust.pl  # noqa: B018
    assert "restart the Python session" in "".join(stopped.value.__notes__)


def test_using_a_model_does_not_load_tl(tmp_path):
    """Import, build, save, load and use a model in a fresh interpreter: `tl` stays unloaded."""
    code = f"""
import sys
import numpy as np
from anndata import AnnData
import scdeepclust.models as m
from scdeepclust.nn import ZINBAutoencoder

adata = AnnData(np.random.default_rng(0).poisson(3.0, (20, 10)).astype(np.float32) + 1)
config = dict(encoder_hidden=[8], latent_dim=2, decoder_hidden=[8])
model = m.SCDCC(
    ZINBAutoencoder(10, encoder_hidden=(8,), latent_dim=2, decoder_hidden=(8,)),
    np.zeros((2, 2), np.float32),
    config=config,
    features=list(adata.var_names),
    preprocessing=dict(
        median_library_size=100.0, gene_mean=[0.0] * 10, gene_scale=[1.0] * 10
    ),
    key_added="scdcc",
)
m.load(model.save({str(tmp_path)!r})).predict(adata, device="cpu")
loaded = sorted(name for name in sys.modules if name.startswith("scdeepclust.tl"))
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
