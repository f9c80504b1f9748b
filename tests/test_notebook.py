"""The tutorial notebook runs top to bottom on the tiny preset (public API only) and shows what it
explains: each kind of error, the tables, the threshold's precision, the pictures."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELAUDIT_NB_WORK", str(tmp_path))
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "findings in" in outputs and "val mean F1 before/after" in outputs
    for kind in ("flip", "drop", "boundary", "blob"):  # a picture of each kind of error
        assert f"example of {kind}:" in outputs, kind
    assert "expected precision  measured precision" in outputs and "accept threshold:" in outputs
    assert "given -> suggested" in outputs  # the findings and the confusion-pair tables
    pictures = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})]
    assert len(pictures) >= 3  # the kinds, the contact sheet, the PR curve
    assert (tmp_path / "fixed" / "manifest.json").exists()
    assert (tmp_path / "report" / "contact_sheet.png").stat().st_size > 1000
    # nothing in the notebook reaches into private modules
    src = "".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "._" not in src.replace("__", "")
