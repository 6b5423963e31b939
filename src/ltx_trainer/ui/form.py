"""The Train page's form, derived from the pydantic schema in :mod:`ltx_trainer.config` (no gradio here).

Every field of :class:`~ltx_trainer.config.LtxTrainerConfig` becomes one :class:`FormField`, grouped by its YAML
section, with the schema's description and default. Scalars are one widget each (checkbox, choice, text); fields that
hold nested models or unions of them (``training_strategy``, ``validation.samples``) are a YAML editor for the whole
value. A new field in the schema appears in the form without touching this module.

Values go back through :func:`~ltx_trainer.config.parse_config`, so the form reports exactly the lines
``ltx-trainer config validate`` prints (``key.path: what is wrong``); :func:`check_values` files each line under the
field (or section) it names, and adds the checks ``train`` runs before it starts (paths that exist) and the UI's own
(paths inside the allowed roots).
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ltx_trainer import logger
from ltx_trainer.config import ConfigError, LtxTrainerConfig, check_paths, config_warnings, parse_config
from ltx_trainer.ui.roots import Roots

Kind = Literal["bool", "choice", "text", "yaml"]
NULL = "null"  # how a choice field shows None
GENERAL = "general"  # the section of top-level scalars (seed, output_dir)
# Fields that name files or folders: checked against the allowed roots (validation media are found in the values).
PATH_KEYS = (
    "model.model_path",
    "model.text_encoder_path",
    "model.video_vae_path",
    "model.audio_vae_path",
    "model.load_checkpoint",
    "data.preprocessed_data_root",
    "output_dir",
)


@dataclass(frozen=True)
class FormField:
    """One widget of the form.

    Attributes:
        key: the YAML key path (``optimization.steps``).
        section: the top-level section it belongs to (``general`` for top-level scalars).
        kind: ``bool`` (checkbox), ``choice`` (dropdown of ``choices``), ``text`` (one line: a string as typed,
            anything else read as YAML), ``yaml`` (a YAML editor for a nested value).
        description: the schema's description.
        default: the default as shown to the user (``None`` when there is none).
        required: no default: the key must be given.
        raw_text: a ``text`` field whose type takes strings: the text is the value (not parsed as YAML).
    """

    key: str
    section: str
    kind: Kind
    description: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    raw_text: bool = False

    @property
    def label(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def info(self) -> str:
        """Description plus the default, as shown under the widget."""
        if self.required:
            return f"{self.description} Required."
        if self.kind == "bool":
            shown = "on" if self.default else "off"
        elif self.default is None or self.default == "":
            shown = "none (null)"
        else:
            shown = _flow(self.default) if not isinstance(self.default, str) else self.default
            shown = shown if len(shown) <= 120 else shown[:117] + "..."
        return f"{self.description} Default: {shown}."


@dataclass(frozen=True)
class FormSection:
    name: str
    description: str
    optional: bool  # the section may be null (lora): the form has an on/off switch for it
    fields: tuple[FormField, ...]


@dataclass
class FormCheck:
    """What the form's values give: the config (None when invalid) and the problems filed by field."""

    config: LtxTrainerConfig | None
    data: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)  # field key or section name or "" -> lines
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors

    def lines(self) -> list[str]:
        return [line for lines in self.errors.values() for line in lines]


# ---- the schema walk ----


def _strip(tp: Any) -> tuple[Any, bool]:
    """(type without ``Annotated`` / ``None``, whether None is allowed)."""
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(members) < len(get_args(tp))
            if len(members) != 1:
                return typing.Union[tuple(members)], optional  # noqa: UP007 - rebuilt from a runtime tuple
            tp = members[0]
        else:
            return tp, optional


def _members(tp: Any) -> list[Any]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(a)[0] for a in get_args(tp)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _holds_models(tp: Any) -> bool:
    tp, _ = _strip(tp)
    if _is_model(tp):
        return True
    return any(_holds_models(a) for a in get_args(tp) if a is not Ellipsis)


def _default(info: Any) -> tuple[Any, bool]:
    """(JSON-able default, required)."""
    if info.default_factory is not None:
        with _quiet():  # the legacy default strategy announces its deprecation when built
            value = info.default_factory()
    elif info.default is PydanticUndefined:
        return None, True
    else:
        value = info.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, Path):
        value = str(value)
    elif isinstance(value, tuple):
        value = list(value)
    return value, False


@contextmanager
def _quiet():
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _leaf(key: str, section: str, info: Any) -> FormField:
    tp, optional = _strip(info.annotation)
    default, required = _default(info)
    description = (info.description or "").strip()
    if tp is bool:
        return FormField(key, section, "bool", description, default, required)
    if get_origin(tp) is Literal:
        choices = tuple(str(c) for c in get_args(tp)) + ((NULL,) if optional else ())
        return FormField(key, section, "choice", description, default, required, choices)
    if _holds_models(tp):
        return FormField(key, section, "yaml", description, default, required)
    raw = any(m in (str, Path) for m in _members(tp)) and not any(m in (int, float) for m in _members(tp))
    return FormField(key, section, "text", description, default, required, raw_text=raw)


@cache
def schema_sections() -> tuple[FormSection, ...]:
    """The form: one section per YAML section of the schema (in the schema's order), then ``general``."""
    sections, general = [], []
    for name, info in LtxTrainerConfig.model_fields.items():
        tp, optional = _strip(info.annotation)
        if _is_model(tp):
            doc = (info.description or (tp.__doc__ or "").strip().splitlines()[0]).replace("``", "")
            fields = tuple(_leaf(f"{name}.{sub}", name, sub_info) for sub, sub_info in tp.model_fields.items())
            sections.append(FormSection(name, doc, optional, fields))
        elif _holds_models(tp):  # a union of models (training_strategy): one YAML editor
            sections.append(FormSection(name, info.description or "", False, (_leaf(name, name, info),)))
        else:
            general.append(_leaf(name, GENERAL, info))
    sections.append(FormSection(GENERAL, "Run-wide settings.", False, tuple(general)))
    return tuple(sections)


def schema_fields() -> tuple[FormField, ...]:
    return tuple(f for s in schema_sections() for f in s.fields)


def optional_sections() -> tuple[str, ...]:
    return tuple(s.name for s in schema_sections() if s.optional)


# ---- values <-> widgets ----


def to_widget(f: FormField, value: Any) -> Any:
    """A config value as the widget shows it."""
    if f.kind == "bool":
        return bool(value)
    if f.kind == "choice":
        return NULL if value is None else str(value)
    if value is None:
        return ""
    if f.kind == "yaml":
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)
    if f.raw_text and isinstance(value, str):
        return value
    return _flow(value)


def _flow(value: Any) -> str:
    """One line of YAML: ``[to_q, to_k]``, ``0.0001``, ``{}``."""
    return (
        yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip().removesuffix("\n...")
    )


def from_widget(f: FormField, shown: Any) -> tuple[bool, Any]:
    """(present, value): an empty text means "not given" (the default, or a "required" error)."""
    if f.kind == "bool":
        return True, bool(shown)
    if f.kind == "choice":
        if shown in (None, ""):
            return False, None
        return True, None if shown == NULL else shown
    text = "" if shown is None else str(shown)
    if not text.strip():
        return False, None
    if text.strip() == NULL:
        return True, None
    if f.raw_text:
        return True, text.strip()
    try:
        return True, yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return True, _YamlProblem(f"{f.key}: invalid YAML{where}: {getattr(e, 'problem', None) or e}")


@dataclass(frozen=True)
class _YamlProblem:
    message: str


def _get(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def values_from_mapping(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Widget values for a config mapping (a YAML file, a preset); absent keys show their defaults.

    A mapping that validates is shown resolved (defaults filled in, legacy keys migrated); one that does not is
    shown as written, so that its problems can be fixed in the form.
    """
    data = dict(data or {})
    try:  # without a strategy the schema builds its legacy default, which announces its deprecation: not news here
        with _quiet() if "training_strategy" not in data else nullcontext():
            shown: Mapping[str, Any] = parse_config(data).model_dump(mode="json")
    except ConfigError:
        shown = data
    values: dict[str, Any] = {}
    for section in schema_sections():
        if section.optional:
            present, value = _get(shown, section.name)
            values[section.name] = present and value is not None
    for f in schema_fields():
        present, value = _get(shown, f.key)
        values[f.key] = to_widget(f, value if present else f.default)
    return values


def mapping_from_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(config mapping, [(field key, YAML problem)]) from widget values; a switched-off optional section is null."""
    data: dict[str, Any] = {}
    problems = []
    off = {name for name in optional_sections() if not values.get(name, True)}
    for f in schema_fields():
        if f.section in off:
            continue
        present, value = from_widget(f, values.get(f.key))
        if isinstance(value, _YamlProblem):
            problems.append((f.key, value.message))
        elif present:
            if f.default is None and not f.required and (value is None or value is False):
                continue  # an unset optional key (e.g. lora.decompose_both, an unticked box) stays unset
            _set(data, f.key, value)
    for name in off:
        data[name] = None
    return data, problems


# ---- checking ----


def owner_of(line: str) -> str:
    """The field (or section, or "" for the whole config) a ``key.path: problem`` line belongs to."""
    path = line.split(": ", 1)[0] if ": " in line else ""
    keys = sorted((f.key for f in schema_fields()), key=len, reverse=True)
    for key in keys:
        if path == key or path.startswith((key + ".", key + "[")):
            return key
    section = path.split(".", 1)[0].split("[", 1)[0]
    return section if any(s.name == section for s in schema_sections()) else ""


def _validation_media(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field key, path) of every media file validation samples name."""
    found = []
    present, samples = _get(data, "validation.samples")
    for i, sample in enumerate(samples if present and isinstance(samples, list) else []):
        for j, cond in enumerate((sample or {}).get("conditions") or [] if isinstance(sample, Mapping) else []):
            for name in ("image_or_video", "video", "audio", "mask"):
                if isinstance(cond, Mapping) and cond.get(name):
                    found.append((f"validation.samples[{i}].conditions[{j}].{name}", str(cond[name])))
    return found


def check_values(values: Mapping[str, Any], roots: Roots, check_files: bool = True) -> FormCheck:
    """Validate the form like ``config validate``; with ``check_files`` also like ``train`` does before it starts
    (paths that exist) and against the allowed roots. Problems are filed under the field they name."""
    data, yaml_problems = mapping_from_values(values)
    check = FormCheck(config=None, data=data)

    def add(line: str, owner: str | None = None) -> None:
        check.errors.setdefault(owner if owner is not None else owner_of(line), []).append(line)

    for key, message in yaml_problems:
        add(message, key)
    try:
        with _quiet() if "training_strategy" not in data else nullcontext():  # see values_from_mapping
            config = parse_config(data, source="form")
    except ConfigError as e:
        for line in e.problems or [str(e).removeprefix("form: ")]:
            add(line)
        return check
    if yaml_problems:
        return check
    if check_files:
        for key in PATH_KEYS:
            present, value = _get(data, key)
            if present and value not in (None, "") and (problem := roots.problem(value, key)):
                add(problem, key)
        for key, value in _validation_media(data):
            if problem := roots.problem(value, key):
                add(problem)  # filed under validation.samples
        if not check.errors:
            for line in check_paths(config):
                add(line)
    check.config = config
    check.warnings = config_warnings(config)
    return check
