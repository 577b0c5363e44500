"""The code's layering: the on-disk formats and the evaluation helpers load without TensorFlow, and no
module imports one from a layer above it (README, "The code")."""

from __future__ import annotations

import ast
import subprocess
import sys

from helpers import REPO_ROOT

# Each module may import only modules listed before it (and tokenization/); the order is the README's.
LAYERS = [
    ["errors", "files", "config", "devices"],
    ["presets", "data"],
    ["model_info", "modeling", "reduced_precision", "checkpoint", "convert", "embedded", "encoder", "graph_tokenizer"],
    ["cache", "encoder_io", "features", "beam_storage", "beam_pipeline", "token_batches"],
    ["metrics", "head", "train", "fine_tune"],
    ["probe", "plots", "tensorboard_logging"],
    ["run_folder", "run", "beam_extract", "sweep", "run_model", "exported_model", "export", "predict", "cli", "explore", "__main__"],
]
WITHOUT_TENSORFLOW = ["cache", "encoder_io", "run_folder", "metrics", "probe", "plots", "checkpoint", "model_info", "data", "config"]


def pipeline_imports(module: str) -> set[str]:
    """The pipeline modules `module` imports anywhere in its source (at the top, in functions, for types)."""
    tree = ast.parse((REPO_ROOT / "pipeline" / f"{module}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pipeline":
                imported.update(alias.name for alias in node.names)
            elif node.module.startswith("pipeline."):
                imported.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("pipeline."))
    return imported - {module}


def test_every_module_is_placed_in_a_layer():
    modules = {path.stem for path in (REPO_ROOT / "pipeline").glob("*.py")} - {"__init__"}
    assert modules == {module for layer in LAYERS for module in layer}


def test_no_module_imports_from_a_later_layer_or_a_later_module_of_its_own():
    order = [module for layer in LAYERS for module in layer]
    problems = [f"{module} imports {other}" for position, module in enumerate(order)
                for other in sorted(pipeline_imports(module)) if order.index(other) > position]
    assert problems == []


def test_export_and_predict_do_not_import_the_run_command():
    assert "run" not in pipeline_imports("export") and "run" not in pipeline_imports("predict")


def test_formats_and_evaluation_helpers_load_without_tensorflow():
    imports = "; ".join(f"import pipeline.{module}" for module in WITHOUT_TENSORFLOW)
    loaded = subprocess.run([sys.executable, "-c", f"{imports}; import sys; print(sorted(m for m in sys.modules "
                             f"if m.split('.')[0] in ('tensorflow', 'tf_keras', 'tensorflow_hub')))"],
                            capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == "[]"
