"""Run notebooks/tutorial.ipynb at its full settings and store the result as docs/tutorial.ipynb.

The notebook in notebooks/ stays without outputs (clean diffs, and tests/test_notebook.py runs it
at a few epochs); the documentation shows this executed copy, figures included. Rerun after
changing the tutorial (a few minutes on a laptop CPU):

    python docs/render_tutorial.py

tests/test_notebook.py fails when the copy's cells no longer match the source notebook's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DOCS = Path(__file__).resolve().parent
SOURCE = DOCS.parent / "notebooks" / "tutorial.ipynb"
RENDERED = DOCS / "tutorial.ipynb"


def main() -> None:
    notebook = nbformat.read(SOURCE, as_version=4)
    env_fast = os.environ.pop("SCDEEPCLUST_TUTORIAL_FAST", None)  # full settings only
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    try:
        with tempfile.TemporaryDirectory() as scratch:  # files the tutorial writes go here
            NotebookClient(
                notebook,
                timeout=3600,
                kernel_name="python3",
                resources={"metadata": {"path": scratch}},
            ).execute()
    finally:
        if env_fast is not None:
            os.environ["SCDEEPCLUST_TUTORIAL_FAST"] = env_fast
    for cell in notebook.cells:
        if cell.cell_type == "code":
            # progress bars and library warnings are noise on a documentation page
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
    nbformat.write(notebook, RENDERED)
    print(f"wrote {RENDERED.relative_to(DOCS.parent)}")


if __name__ == "__main__":
    main()
