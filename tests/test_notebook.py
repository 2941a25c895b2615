"""notebooks/tutorial.ipynb runs from top to bottom (at a few epochs), so it cannot rot."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TUTORIAL = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"


def test_tutorial_is_committed_without_outputs():
    notebook = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


def test_tutorial_runs(tmp_path, monkeypatch):
    notebook = nbformat.read(TUTORIAL, as_version=4)
    # The kernel inherits the environment: the first cell reads this and trains a few epochs.
    monkeypatch.setenv("SCDEEPCLUST_TUTORIAL_FAST", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # run in a scratch folder
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 8  # every plot drew something
    assert "SCDEEPCLUST_TUTORIAL_FAST" in os.environ
