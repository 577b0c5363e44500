"""The code's layering, by folder: each stage folder of `pipeline/` imports only the folders below it (the ones its
`__init__` docstring names) and `tokenization/`; inside a folder, modules import only those listed before them;
the on-disk formats and the evaluation helpers load without TensorFlow (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "pipeline"

# The folders from the base up, and inside each the order its modules may import one another in.
FOLDERS: dict[str, list[str]] = {
    "base": ["errors", "files", "precision", "config", "devices", "progress_bars", "quick_exit"],
    "data": ["presets", "targets", "tables"],
    "encoders": ["model_info", "modeling", "reduced_precision", "int8", "checkpoint", "convert", "embedded", "encoder", "graph_tokenizer"],
    "features": ["cache", "encoder_io", "long_texts", "extraction", "graph_long_texts", "beam_storage", "beam_pipeline"],
    "evaluation": ["metrics", "multi_label", "regression", "probe", "scoring", "plots", "tensorboard_logging"],
    "training": ["head", "progress", "train", "in_step", "token_batches", "fine_tune"],
    "runs": ["run_folder", "run_model", "exported_model", "prepare", "run", "summary", "beam_extract", "sweep", "export",
             "predict", "explore"],
    "commands": ["cli"],
    "api": ["inputs", "cached_features", "feature_extractor", "run_estimator", "text_regressor", "text_classifier"],
}
WITHOUT_TENSORFLOW = ["features.cache", "features.encoder_io", "features.long_texts", "runs.run_folder",
                      "evaluation.metrics", "evaluation.multi_label", "evaluation.regression", "evaluation.probe", "evaluation.scoring", "evaluation.plots",
                      "encoders.checkpoint", "encoders.model_info", "data.tables", "data.targets", "base.config",
                      "base.precision", "base.quick_exit", "training.token_batches"]


def imported_modules(path: Path) -> set[str]:
    """The pipeline modules (`folder.module`, or `folder` for its package) a file imports anywhere: at the top, in
    functions, for types."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipeline":
            parts = node.module.split(".")[1:]
            if len(parts) == 2:
                imported.add(".".join(parts))
            elif len(parts) == 1:  # from pipeline.folder import module
                imported.update(f"{parts[0]}.{alias.name}" for alias in node.names)
            else:
                imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(".".join(alias.name.split(".")[1:3]) for alias in node.names if alias.name.startswith("pipeline."))
    return imported


def declared_imports(folder: str) -> list[str]:
    """The folders named on the `May import:` line of the folder's __init__ docstring."""
    docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8"))) or ""
    line = re.search(r"^May import: (.+)\.$", docstring, re.M)
    assert line, f"pipeline/{folder}/__init__.py must say in its docstring what it may import ('May import: ...')"
    return [] if line.group(1) == "nothing of pipeline" else [name.strip() for name in line.group(1).split(",")]


def test_every_module_lives_in_a_known_folder_and_nothing_is_left_at_the_top():
    top_level = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py", "__main__.py"]
    folders = sorted(path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__")
    assert folders == sorted(FOLDERS)
    for folder, modules in FOLDERS.items():
        assert sorted(path.stem for path in (PACKAGE / folder).glob("*.py")) == sorted([*modules, "__init__"])


def test_each_folder_declares_only_folders_below_it():
    order = list(FOLDERS)
    for position, folder in enumerate(order):
        declared = declared_imports(folder)
        assert set(declared) <= set(order[:position]), f"{folder} declares {declared}, not all below it"


def test_no_module_imports_a_folder_above_it_or_one_its_folder_does_not_declare():
    problems = []
    for folder, modules in FOLDERS.items():
        allowed = set(declared_imports(folder))
        for position, module in enumerate(modules):
            for other in sorted(imported_modules(PACKAGE / folder / f"{module}.py")):
                other_folder, _, other_module = other.partition(".")
                if other_folder == folder:
                    if other_module not in modules[:position]:
                        problems.append(f"{folder}/{module} imports {other_module}, listed after it in {folder}/")
                elif other_folder not in allowed:
                    problems.append(f"{folder}/{module} imports {other}, which {folder}/__init__.py does not allow")
    assert problems == []


def test_the_checker_sees_an_import_that_runs_back_up(tmp_path):
    upward = tmp_path / "upward.py"
    upward.write_text("def f():\n    from pipeline.commands.cli import main\n    from pipeline.features import cache\n"
                      "    import pipeline.training.head\n")
    assert imported_modules(upward) == {"commands.cli", "features.cache", "training.head"}


def test_package_inits_hand_nothing_on_so_importing_a_folder_stays_cheap():
    for folder in FOLDERS:
        tree = ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree) and len(tree.body) == 1, f"pipeline/{folder}/__init__.py: a docstring only"


def test_export_and_predict_do_not_import_run():
    for module in ("export", "predict"):
        assert "runs.run" not in imported_modules(PACKAGE / "runs" / f"{module}.py")


def test_the_python_api_never_imports_the_command_line_and_the_command_line_holds_only_the_command_line():
    """Both front ends call the shared core (runs/); neither calls the other."""
    assert declared_imports("api") == ["base", "data", "encoders", "features", "evaluation", "training", "runs"]
    for module in FOLDERS["api"]:
        imported = imported_modules(PACKAGE / "api" / f"{module}.py")
        assert not {name for name in imported if name.split(".")[0] == "commands"}, module
    assert FOLDERS["commands"] == ["cli"]


def test_formats_and_evaluation_helpers_load_without_tensorflow():
    imports = "; ".join(f"import pipeline.{module}" for module in WITHOUT_TENSORFLOW)
    loaded = subprocess.run([sys.executable, "-c", f"{imports}; import sys; print(sorted(m for m in sys.modules "
                             f"if m.split('.')[0] in ('tensorflow', 'tf_keras', 'tensorflow_hub')))"],
                            capture_output=True, text=True, timeout=120, check=True, env={"PATH": "/usr/bin:/bin"})
    assert loaded.stdout.strip() == "[]"
