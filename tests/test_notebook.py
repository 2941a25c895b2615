"""notebooks/tutorial.ipynb runs from top to bottom (at a few epochs), so it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "notebooks" / "tutorial.ipynb"
RENDERED = ROOT / "docs" / "tutorial.ipynb"  # executed by docs/render_tutorial.py


def test_tutorial_is_committed_without_outputs():
    notebook = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


def test_rendered_tutorial_matches_the_source():
    # The documentation shows the executed copy: it must be the notebook as it is now, run to
    # the end. Rerun `python docs/render_tutorial.py` after changing the tutorial.
    source = nbformat.read(TUTORIAL, as_version=4)
    rendered = nbformat.read(RENDERED, as_version=4)
    nbformat.validate(rendered)
    assert [(c.cell_type, c.source) for c in rendered.cells] == [
        (c.cell_type, c.source) for c in source.cells
    ], "docs/tutorial.ipynb is out of date: run `python docs/render_tutorial.py`"
    code = [c for c in rendered.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # in one run
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 8


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
