"""The import layers of docs/architecture.md, checked on the source: imports flow one way, and only models/ knows the
model family.

    config, io, errors (and the package root)  <-  models  <-  data  <-  integrations  <-  sampling  <-  training
        <-  pipeline (run-pipeline: calls data, training and sampling)               commands, cli, demo on top
                                                                                  <-  ui (the web UI)

Every import is checked, including the ones inside functions (lazy imports are still dependencies).
"""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "ltx_trainer"

BASE = {"root", "config", "config_checks", "io", "errors"}
ALLOWED = {
    "root": BASE,
    "config": BASE,
    "io": BASE,
    "errors": BASE,
    "config_checks": BASE,
    "models": BASE | {"models"},
    "data": BASE | {"models", "data"},
    "integrations": BASE | {"models", "data", "integrations"},
    "sampling": BASE | {"models", "data", "integrations", "sampling"},
    "training": BASE | {"models", "data", "integrations", "sampling", "training"},
    "pipeline": BASE | {"models", "data", "integrations", "sampling", "training", "pipeline"},
    "ui": BASE | {"models", "data", "integrations", "sampling", "training", "ui"},
}
TOP = {"commands", "cli", "demo", "__main__"}  # may import anything; nothing below may import them


def _layer(module: str) -> str:
    """``ltx_trainer.data.media`` -> ``data``; ``ltx_trainer.config`` -> ``config``; ``ltx_trainer`` -> ``root``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def _module_name(path: Path, root: Path = SRC) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, imported ltx_trainer module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from ltx_trainer import data`` imports the subpackage (``logger`` is an attribute of the root)
            if target == "ltx_trainer":
                modules = [a.name for a in node.names if (root / a.name).is_dir() or (root / f"{a.name}.py").is_file()]
                found += [(node.lineno, f"ltx_trainer.{m}") for m in modules]
    return [(line, name) for line, name in found if name == "ltx_trainer" or name.startswith("ltx_trainer.")]


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_source_tree_is_found():
    assert (SRC / "models" / "base.py").is_file() and len(_sources()) > 20


def violations(path: Path, root: Path = SRC) -> list[str]:
    """``file:line: what`` for every import of ``path`` against the layers."""
    importer = _layer(_module_name(path, root))
    problems = []
    for line, target in _imports(path, root):
        imported = _layer(target)
        if importer in TOP:
            continue
        if imported in TOP:
            problems.append(f"{path.relative_to(root)}:{line}: {importer} imports {target} (commands/cli are on top)")
        elif imported not in ALLOWED.get(importer, set()):
            problems.append(f"{path.relative_to(root)}:{line}: {importer} imports {target} (against the layers)")
    return problems


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path):
    assert violations(path) == []


def test_the_ui_is_a_layer_above_training_that_only_the_commands_import(tmp_path):
    fake = tmp_path / "ltx_trainer"
    for folder in ("training", "ui"):
        (fake / folder).mkdir(parents=True)
    (fake / "training" / "bad.py").write_text("def f():\n    from ltx_trainer.ui import runs\n")
    (fake / "ui" / "bad.py").write_text("from ltx_trainer.training import run\nfrom ltx_trainer.commands import ui\n")
    assert violations(fake / "training" / "bad.py", fake) == [
        "training/bad.py:2: training imports ltx_trainer.ui (against the layers)"
    ]
    assert violations(fake / "ui" / "bad.py", fake) == [
        "ui/bad.py:2: ui imports ltx_trainer.commands (commands/cli are on top)"
    ]


def test_the_checker_catches_wrong_imports_also_inside_functions(tmp_path):
    fake = tmp_path / "ltx_trainer"
    for folder in ("models", "training", "commands"):
        (fake / folder).mkdir(parents=True)
    bad = fake / "models" / "bad.py"
    bad.write_text(
        "from ltx_trainer import logger, training\n"
        "def f():\n    from ltx_trainer.training.trainer import Trainer\n    from ..commands import sample\n"
    )
    assert violations(bad, fake) == [
        "models/bad.py:1: models imports ltx_trainer.training (against the layers)",
        "models/bad.py:3: models imports ltx_trainer.training.trainer (against the layers)",
        "models/bad.py:4: models imports ltx_trainer.commands (commands/cli are on top)",
    ]


# `spec.family != "ltx2"`, `family == 'ltxv'`, `"ltx2" == model.spec.family`, `family in ("ltx2", ...)`
_FAMILY_BRANCH = (
    r"""family\s*(?:==|!=)\s*["']|["']\s*(?:==|!=)\s*[\w.]*family\b|family\s+(?:not\s+)?in\s*[(\[{]\s*["']"""
)


def test_the_family_branch_pattern_catches_the_forms() -> None:
    for text in (
        'if spec.family != "ltx2":',
        "x = family == 'ltxv'",
        'if "ltx2" == m.spec.family:',
        'if spec.family in ("ltx2", "ltxv"):',
    ):
        assert re.findall(_FAMILY_BRANCH, text), text
    assert not re.findall(_FAMILY_BRANCH, "if (family, version) != (spec.family, spec.version):")


@pytest.mark.parametrize("path", [p for p in _sources() if _layer(_module_name(p)) != "models"], ids=str)
def test_only_models_know_the_family_and_model_internals(path):
    text = path.read_text()
    assert "__dict__" not in text, f"{path}: reaches into an object's __dict__; add the operation to models/base.py"
    branches = re.findall(_FAMILY_BRANCH, text)
    assert not branches, f"{path}: branches on the model family ({branches}); put the difference behind the contract"
