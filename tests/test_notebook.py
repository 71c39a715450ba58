"""The example notebook (examples/quickstart.ipynb) is what its source builds,
and runs top to bottom in a fresh Jupyter kernel (nbclient + ipykernel), so it
cannot rot.  Its cells assert the economics themselves (NLP = closed form,
profit falls when a cost rises, IC multipliers = minus the mass above).
Measured: ~10 s (kernel start ~2 s)."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SPEED = "integration"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebook", EXAMPLES / "build_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stored_notebook_is_built_from_the_script_without_outputs():
    b = _builder()
    stored = (EXAMPLES / "quickstart.ipynb").read_text()
    assert stored == b.render(b.build()), "run: python examples/build_notebook.py"
    nb = nbformat.reads(stored, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_notebook_executes_top_to_bottom(tmp_path):
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    env_pp = os.environ.pop("PYTHONPATH", None)  # the notebook must find `models` by itself
    try:
        t0 = time.perf_counter()
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(EXAMPLES)}})
        client.execute()
        seconds = time.perf_counter() - t0
    finally:
        if env_pp is not None:
            os.environ["PYTHONPATH"] = env_pp
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outs), "the plot cell shows a figure inline"
    text = "".join(o.get("text", "") for o in outs)
    assert "all passed: True" in text
    print(f"notebook executed in {seconds:.1f} s")
    assert not list(EXAMPLES.glob("out*")), "the notebook writes nothing"
