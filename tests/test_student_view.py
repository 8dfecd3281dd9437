"""What a student sees in JupyterLab: progress bars as widgets, not a TqdmWarning and text."""
from __future__ import annotations

import nbformat
from nbclient import NotebookClient


def test_the_notebook_kernel_draws_tqdm_bars_as_widgets():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass")]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    outputs = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    assert not any("IProgress not found" in o.get("text", "") for o in outputs)


def test_tensorflow_start_up_lines_stay_out_of_a_notebook_but_warnings_do_not(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # the notebook's own call must quiet them
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from labutils import quiet_tf\nquiet_tf.import_tensorflow()\n"
                                          "from labutils import tfrecords\nimport tensorflow as tf\n"
                                          "print(int(tf.constant(2)))"),
                nbformat.v4.new_code_cell("import warnings\nwarnings.warn('a warning the student must see')")]
    NotebookClient(nb, kernel_name="python3", timeout=300, cwd=".").execute()
    text = "".join(o.get("text", "") for cell in nb.cells for o in cell.outputs)
    assert "2" in text and "a warning the student must see" in text
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cuInit", "cuda drivers", "cpu_feature_guard"):
        assert noise not in text, text
