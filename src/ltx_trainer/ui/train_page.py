"""Train page: the config form (generated from the schema by :mod:`ltx_trainer.ui.form`), presets, YAML load/save,
the memory planner's tiers, and launch.

Every change re-checks the whole form and shows each problem under the field it names, in the words of
``ltx-trainer config validate``; Launch checks again and refuses while any problem is left. A launched run is an
``ltx-trainer train`` process (:mod:`ltx_trainer.ui.runs`) whose config is written to
``<output_dir>/training_config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from ltx_trainer.ui import form, runs
from ltx_trainer.ui.app import UiContext
from ltx_trainer.ui.tasks import describe_error

OPEN_SECTIONS = ("model", "lora", "data", "optimization", form.GENERAL)
ARCHS = ("ltx2.3-22b", "ltx2-19b", "ltxv-13b", "ltxv-2b", "tiny-ltx2", "tiny-ltx2.3", "tiny-ltxv")
FROM_MODEL = "the model file (model.model_path)"
# The form starts from the schema's defaults, but with the flexible strategy (the schema's default is the legacy
# text_to_video one) generating video from the official latents folder.
STARTING_STRATEGY = {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}}


def elem_id(key: str) -> str:
    """``optimization.steps`` -> ``field-optimization-steps`` (the browser tests find widgets by these)."""
    return "field-" + key.replace(".", "-").replace("_", "-")


@dataclass
class TrainPage:
    keys: list[str]  # widget keys: optional-section switches, then every field
    widgets: list[Any]
    errors: list[Any]  # one Markdown per field / section / "" (the whole config), in error_keys order
    error_keys: list[str]
    summary: Any
    launch: Any
    launched: Any  # a hidden textbox that receives the new run's folder
    status: Any
    check: Any = None  # check(*widget values) -> [*errors, summary]: run when the page loads
    fill: Any = None  # fill(mapping, message) -> the outputs of `fill_outputs`: loads a config into the form
    fill_outputs: list[Any] | None = None

    def updates(self, values: dict[str, Any]) -> list[Any]:
        return [values.get(key, gr.skip()) for key in self.keys]


def _error_updates(page: TrainPage, check: form.FormCheck | None) -> list[Any]:
    errors = check.errors if check is not None else {}
    out = []
    for key in page.error_keys:
        lines = errors.get(key, [])
        out.append(gr.update(value="\n\n".join(f"**problem:** {line}" for line in lines), visible=bool(lines)))
    return out


def _summary(check: form.FormCheck) -> str:
    warnings = "".join(f"\n- warning: {w}" for w in check.warnings)
    if check.ok:
        return f"**ok:** the config is valid; Launch starts `ltx-trainer train` on it.{warnings}"
    count = len(check.lines())
    return f"**{count} problem(s)**, shown under their fields; Launch is refused until they are fixed.{warnings}"


def build(ctx: UiContext) -> TrainPage:
    sections = form.schema_sections()
    initial = form.values_from_mapping(
        {"lora": {}, "training_strategy": STARTING_STRATEGY, "output_dir": str(ctx.outputs / "run-1")}
    )
    keys: list[str] = []
    widgets: list[Any] = []
    error_keys: list[str] = [""]
    error_boxes: list[Any] = []

    gr.Markdown(
        "Every field of the training config, grouped by section, with its description and default. Problems are "
        "shown under the field as `ltx-trainer config validate` words them."
    )
    with gr.Row():
        presets = sorted(p.stem for p in ctx.presets.glob("*.yaml")) if ctx.presets else []
        preset = gr.Dropdown(presets, label="Preset (configs/, per conditioning mode)", value=None, scale=2)
        yaml_path = gr.Textbox(
            label="YAML file (load / save)",
            placeholder=str(ctx.outputs / "config.yaml"),
            scale=3,
            elem_id="train-yaml-path",
        )
        overwrite = gr.Checkbox(label="overwrite on save", value=False, scale=1)
    with gr.Row():
        load_preset = gr.Button("Load preset", size="sm")
        load_yaml = gr.Button("Load YAML", size="sm")
        save_yaml = gr.Button("Save YAML", size="sm")
    file_status = gr.Markdown(elem_id="train-file-status")
    with gr.Accordion("Memory tier (from ltx-trainer plan)", open=False):
        with gr.Row():
            arch = gr.Dropdown([FROM_MODEL, *ARCHS], value=FROM_MODEL, label="architecture")
            gpu = gr.Number(24, label="GPU memory (GB)")
            ram = gr.Number(64, label="host RAM (GB)")
            shape = gr.Textbox("704x384x97", label="training clips W x H x F")
        plan_button = gr.Button("Plan", size="sm")
        plan_table = gr.Dataframe(
            headers=["tier", "blocks swapped", "checkpointing", "VRAM GB", "RAM GB", "relative time", "fits"],
            interactive=False,
            visible=False,
        )
        plan_status = gr.Markdown()
        apply_plan = gr.Button("Apply the fastest tier that fits", size="sm", interactive=False)
        chosen = gr.State(None)
    general_error = gr.Markdown(visible=False, elem_classes="field-error", elem_id="error-config")
    error_boxes.append(general_error)

    for section in sections:
        with gr.Accordion(section.name, open=section.name in OPEN_SECTIONS, elem_id=f"section-{section.name}"):
            gr.Markdown(section.description)
            if section.optional:
                keys.append(section.name)
                widgets.append(
                    gr.Checkbox(
                        initial[section.name], label=f"use a {section.name} section", elem_id=elem_id(section.name)
                    )
                )
            error_keys.append(section.name)
            error_boxes.append(gr.Markdown(visible=False, elem_classes="field-error"))
            with gr.Row(equal_height=False):
                for f in section.fields:
                    with gr.Column(min_width=320, scale=2 if f.kind == "yaml" else 1):
                        widgets.append(_widget(f, initial[f.key]))
                        keys.append(f.key)
                        error_keys.append(f.key)
                        error_boxes.append(
                            gr.Markdown(visible=False, elem_classes="field-error", elem_id="error-" + elem_id(f.key))
                        )
    summary = gr.Markdown(elem_id="train-summary")
    with gr.Row():
        launch = gr.Button("Launch training", variant="primary", elem_id="train-launch")
    status = gr.Markdown(elem_id="train-status")
    launched = gr.Textbox(visible=False)
    page = TrainPage(keys, widgets, error_boxes, error_keys, summary, launch, launched, status)

    def values_of(args: tuple) -> dict[str, Any]:
        return dict(zip(keys, args, strict=True))

    def check(*args: Any) -> list[Any]:
        result = form.check_values(values_of(args), ctx.roots)
        return [*_error_updates(page, result), _summary(result)]

    def fill(data: dict | None, message: str) -> list[Any]:
        values = form.values_from_mapping(data)
        result = form.check_values(values, ctx.roots)
        return [*page.updates(values), *_error_updates(page, result), _summary(result), message]

    def from_preset(name: str | None) -> list[Any]:
        if not name or ctx.presets is None:
            return [*[gr.skip()] * (len(keys) + len(error_boxes) + 1), "Pick a preset first."]
        path = ctx.presets / f"{name}.yaml"
        return fill(yaml.safe_load(path.read_text()), f"Loaded preset `{path.name}`; point its paths at your files.")

    def from_file(path_text: str) -> list[Any]:
        try:
            path = ctx.roots.check(path_text, "YAML file")
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as e:
            return [*[gr.skip()] * (len(keys) + len(error_boxes) + 1), describe_error(e)]
        return fill(data if isinstance(data, dict) else {}, f"Loaded `{path}`.")

    def save(path_text: str, replace: bool, *args: Any) -> str:
        try:
            path = ctx.roots.check(path_text, "YAML file")
            if path.exists() and not replace:
                return f"error: {path} exists; tick 'overwrite on save' or choose another file"
            result = form.check_values(values_of(args), ctx.roots, check_files=False)
            from ltx_trainer.io import atomic_write_text

            atomic_write_text(path, yaml.safe_dump(result.data, sort_keys=False, allow_unicode=True, width=120))
        except (OSError, ValueError) as e:
            return describe_error(e)
        note = "" if result.ok else f" ({len(result.lines())} problem(s) left in it)"
        return f"Saved `{path}`{note}."

    def start(*args: Any) -> list[Any]:
        result = form.check_values(values_of(args), ctx.roots)
        if not result.ok:
            lines = result.lines()
            first = f" First: {lines[0]}" if lines else ""
            message = f"Launch refused: {len(lines)} problem(s) to fix (marked under their fields).{first}"
            return [*_error_updates(page, result), _summary(result), message, ""]
        run_dir = Path(result.config.output_dir)
        text = yaml.safe_dump(result.data, sort_keys=False, allow_unicode=True, width=120)
        try:
            pid = runs.launch_new(text, run_dir, ctx.cwd)
        except (OSError, ValueError) as e:
            return [*_error_updates(page, result), _summary(result), describe_error(e), ""]
        message = f"Started `ltx-trainer train` (pid {pid}) in `{run_dir}`; follow it on the Runs page."
        return [*_error_updates(page, result), _summary(result), message, str(run_dir)]

    def plan(arch_name: str, gpu_gb: float, ram_gb: float, shape_text: str, *args: Any) -> list[Any]:
        values = values_of(args)
        try:
            rows, best, text = _plan(arch_name, gpu_gb, ram_gb, shape_text, values)
        except (OSError, ValueError) as e:
            return [gr.update(visible=False), describe_error(e), gr.update(interactive=False), None]
        table = [[r.tier, r.blocks_to_swap, r.checkpointing, round(r.vram_gb, 1), round(r.host_gb, 1),
                  round(r.relative_time, 2), r.fits] for r in rows]  # fmt: skip
        return [gr.update(value=table, visible=True), text, gr.update(interactive=best is not None), best]

    def apply(best: Any) -> list[Any]:
        if best is None:
            return [gr.skip()] * len(keys)
        from ltx_trainer.models.memory_plan import TIERS

        quantization = TIERS[best.tier]
        values = {
            "acceleration.mixed_precision_mode": "bf16",
            "acceleration.quantization": quantization or form.NULL,
            "acceleration.blocks_to_swap": str(best.blocks_to_swap),
            "optimization.enable_gradient_checkpointing": best.checkpointing,
        }
        return page.updates(values)

    gr.on([w.change for w in widgets], check, inputs=widgets, outputs=[*error_boxes, summary])
    fill_outputs = [*widgets, *error_boxes, summary, file_status]
    load_preset.click(from_preset, preset, fill_outputs)
    load_yaml.click(from_file, yaml_path, fill_outputs)
    save_yaml.click(save, [yaml_path, overwrite, *widgets], file_status)
    launch.click(start, widgets, [*error_boxes, summary, status, launched])
    plan_button.click(plan, [arch, gpu, ram, shape, *widgets], [plan_table, plan_status, apply_plan, chosen])
    apply_plan.click(apply, chosen, widgets)
    page.check, page.fill, page.fill_outputs = check, fill, fill_outputs
    return page


def _widget(f: form.FormField, value: Any) -> Any:
    common = {"label": f.key, "info": f.info, "elem_id": elem_id(f.key)}
    if f.kind == "bool":
        return gr.Checkbox(value, **common)
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=value, **common)
    if f.kind == "yaml":
        return gr.Textbox(value, lines=6, max_lines=30, elem_classes="mono", **common)
    return gr.Textbox(value, lines=1, **common)


def _plan(arch_name: str, gpu_gb: float, ram_gb: float, shape_text: str, values: dict[str, Any]):
    """The planner's rows for the form's model (or a released architecture), rank and mode."""
    from ltx_trainer.models import memory_plan as mp

    try:
        width, height, frames = (int(v) for v in shape_text.lower().split("x"))
    except ValueError:
        raise ValueError(f"training clips: {shape_text!r} is not W x H x F, e.g. 704x384x97") from None
    mode = values.get("model.training_mode") or "lora"
    try:
        rank = int(values.get("lora.rank") or 64)
    except ValueError:
        rank = 64
    if arch_name == FROM_MODEL:
        model = Path(str(values.get("model.model_path") or ""))
        if not model.is_file():
            raise ValueError(f"model.model_path: {model} is not a file; pick an architecture instead")
        name, transformer = mp.meta_transformer(None, model)
    else:
        name, transformer = mp.meta_transformer(arch_name, None)
    sizes = mp.model_sizes(name, transformer)
    rows = mp.plan_rows(sizes, mp.Shape(width, height, frames), float(gpu_gb), float(ram_gb), rank, mode)
    best = mp.fastest(rows)
    if best is None:
        least = mp.smallest(rows)
        return (
            rows,
            None,
            (
                f"Nothing fits {gpu_gb:g} GB GPU / {ram_gb:g} GB RAM for {name}: the smallest tier ({least.tier}, "
                f"{least.blocks_to_swap} blocks swapped) needs {least.vram_gb:.1f} GB VRAM."
            ),
        )
    text = (
        f"{name}: fastest that fits is **{best.tier}**, {best.blocks_to_swap} blocks swapped, checkpointing "
        f"{'on' if best.checkpointing else 'off'} ({best.vram_gb:.1f} GB VRAM, {best.host_gb:.1f} GB RAM)."
    )
    return rows, best, text


def link_to_runs(train: TrainPage, runs_view: Any, tabs: Any) -> None:
    """A launched run opens on the Runs page."""

    def open_run(run_dir: str) -> list[Any]:
        if not run_dir:
            return [gr.skip(), gr.skip()]
        return [gr.Tabs(selected="runs"), run_dir]

    train.launched.change(open_run, train.launched, [tabs, runs_view.wanted])
