"""The five notebooks run top to bottom (nbclient) on tiny CSVs and the tiny encoder, failing on any cell error."""

from __future__ import annotations

import pytest
from helpers import REPO_ROOT, write_tiny_csv, write_tiny_multi_label_csv

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = ("01_explore_data.ipynb", "02_train_and_evaluate.ipynb", "03_features.ipynb",
             "04_your_own_dataframe.ipynb", "05_several_labels_per_text.ipynb")
CELL_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def run_notebook(tmp_path_factory, tiny_encoder_dir):
    """Runs notebooks in one kernel started with the PIPELINE_NOTEBOOK_* switches (tiny CSVs, tiny encoder).

    One kernel for the five saves importing TensorFlow and loading the encoder five times; each
    notebook starts with `%reset -f`, so none can use a variable another one defined.
    """
    folder = tmp_path_factory.mktemp("notebooks")
    environment = {
        "PIPELINE_NOTEBOOK_DATA": str(write_tiny_csv(folder / "reviews.csv", 60)),
        # notebook 05's table: text and the 0/1 columns acting, plot, ending
        "PIPELINE_NOTEBOOK_MULTI_LABEL_CSV": str(write_tiny_multi_label_csv(folder / "aspects.csv", 90)),
        "PIPELINE_NOTEBOOK_ENCODER": str(tiny_encoder_dir),
        "PIPELINE_NOTEBOOK_MAX_SEQ_LENGTH": "16",
        "PIPELINE_NOTEBOOK_EPOCHS": "3",
        "PIPELINE_ARTIFACTS": str(folder / "artifacts"),  # the kernel keeps the environment it started with
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    clients = []

    def run(name: str):
        book = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
        book.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
        client = nbclient.NotebookClient(
            book, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3", km=clients[0].km if clients else None,
            resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}},
        )
        clients.append(client)
        client.execute(cleanup_kc=False)  # raises CellExecutionError on the first cell that fails
        return book

    with pytest.MonkeyPatch.context() as patch:  # the kernel inherits this process's environment
        for key, value in environment.items():
            patch.setenv(key, value)
        try:
            yield run
        finally:
            for client in clients:
                if client.kc is not None:
                    client.kc.stop_channels()
            if clients and clients[0].km is not None and clients[0].km.has_kernel:
                nbclient.util.run_sync(clients[0].km.shutdown_kernel)(now=True)


def outputs_of(book) -> str:
    """Everything the cells showed, as text (images reduced to their MIME type)."""
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for mime, value in output.get("data", {}).items():
                parts.append(mime if mime.startswith("image/") else str(value))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_on_tiny_data(run_notebook, name):
    book = run_notebook(name)
    code_cells = [cell for cell in book.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code_cells), "every code cell ran"
    assert len(code_cells) == 1 + sum(cell.cell_type == "code" for cell in
                                      nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4).cells)
    shown = outputs_of(book)
    assert "Traceback" not in shown
    assert "image/png" in shown  # each notebook draws at least one plot
    expected = {
        "01_explore_data.ipynb": ["60 texts, classes ['neg', 'pos'], max_seq_length 16",  # the run summary's line:
                                  "Long texts: 0 of 40 texts (0.0%) longer than 91 tokens were cut (windows)"],  # 40 distinct
        "02_train_and_evaluate.ipynb": ["Test set (6 texts):", "baseline (logistic regression)", "val_auroc",
                                        "confidence", "--logdir"],
        "03_features.ipynb": ["60 texts x 64 features, pooling mean", "cosine_similarity"],  # 2 layers x 32, side by side
        "04_your_own_dataframe.ipynb": ["48 texts to train on, 12 to test on", "best C", "Test set (12 texts):",
                                        "logistic regression (GridSearchCV)", "TextClassifier"],
        "05_several_labels_per_text.ipynb": ["90 texts, labels ['acting', 'plot', 'ending']", "72 texts to train on, 18 to test on",
                                             "Test set (18 texts, 3 labels):", "macro_auroc", "Weakest labels",
                                             "baseline auroc", "multi-label; classes_ ['acting', 'plot', 'ending']",
                                             "same labels for the new texts: True"],
    }[name]
    for fragment in expected:
        assert fragment in shown, fragment
