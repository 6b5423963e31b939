"""No silent switches: every field of the config schema is read by the code that does the work.

A field that validates and is then never read is a switch that is accepted and ignored. This walks the whole schema
(every section, every strategy and condition class) and looks for a read of each field (``<expr>.<field>``) in the
package outside ``config.py`` / ``config_checks.py``, where validators and path checks read fields without applying
them. Fields that config.py itself turns into something else (legacy strategy shorthands into the flexible form, the
text-encoder bit flags into a number) name that converter, and the converter must be read outside config.py in turn.
Sections handed over whole as keyword arguments (``model_dump()`` -> a factory) name the function, and each of their
fields must be one of its parameters.
"""

import ast
import importlib
import inspect
import typing
from pathlib import Path

from pydantic import BaseModel

from ltx_trainer.config import LtxTrainerConfig

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ltx_trainer"
CONFIG_MODULES = {"config.py", "config_checks.py"}

# field name -> the config.py member that reads it and is itself read outside config.py
CONVERTED = {
    "first_frame_conditioning_p": "as_flexible",
    "with_audio": "as_flexible",
    "audio_latents_dir": "as_flexible",
    "reference_latents_dir": "as_flexible",
    "load_text_encoder_in_8bit": "text_encoder_bits",
    "load_text_encoder_in_4bit": "text_encoder_bits",
}

# section -> (module, function) that receives the section's fields as keyword arguments
KEYWORDS = {"pipeline.caption": ("ltx_trainer.data.captioning.factory", "make_captioner")}


def _attribute_reads(files) -> set[str]:
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
    return names


def _reads_inside(member: str) -> set[str]:
    """Attributes read inside the config.py functions (methods or properties) called ``member``."""
    tree = ast.parse((PACKAGE / "config.py").read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == member]
    assert functions, f"config.py has no {member}()"
    return {n.attr for f in functions for n in ast.walk(f) if isinstance(n, ast.Attribute)}


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _fields() -> dict[str, str]:
    """Every field of the schema: ``dotted.path`` -> field name (first path found for each class and field)."""
    found: dict[str, str] = {}
    seen: set[type] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            found[f"{prefix}{name}"] = name
            for sub in _models(field.annotation):
                walk(sub, f"{prefix}{name}.")

    walk(LtxTrainerConfig, "")
    return found


def test_the_walk_covers_the_whole_schema():
    fields = _fields()
    for path in ("model.load_checkpoint", "hub.push_to_hub", "training_strategy.video.conditions.probability"):
        assert path in fields, sorted(fields)[:20]
    assert len(fields) > 80


def test_every_config_field_is_read_where_the_work_is_done():
    outside = _attribute_reads(p for p in PACKAGE.rglob("*.py") if p.name not in CONFIG_MODULES)
    unread = []
    for path, name in sorted(_fields().items()):
        if name in outside:
            continue
        converter = CONVERTED.get(name)
        if converter and name in _reads_inside(converter) and converter in outside:
            continue
        section = path.rpartition(".")[0]
        if section in KEYWORDS:
            module, function = KEYWORDS[section]
            if name in inspect.signature(getattr(importlib.import_module(module), function)).parameters:
                continue
        unread.append(path)
    assert not unread, f"accepted but never applied (implement or remove): {unread}"
