"""What people look at after a run: loss curves and a one-page HTML report that shows what training changed.

The page (``report.html`` in the run folder, or any name ``write_report`` is given) holds, top to bottom:

- the verdict of the before/after comparison ("samples moved 42 % closer to the training clips") and a summary table;
- **before and after**: per training clip, the clip (its cached latents decoded), the base model's sample and the
  trained one's from the same seed, with their distances to the clip (``sampling/efficacy.py`` measures them; this
  module only shows the plain dict ``Efficacy.to_dict()`` gives);
- **validation samples**: one row per validation prompt, one column per step, step 0 (the base model, drawn before
  the first update) first;
- the loss (raw, smoothed, per modality) with the learning rate, and the loss per sigma quarter;
- the config.

Every mp4 gets a PNG poster (its middle frame, ``posters/`` in the run folder) shown before it plays
(``<video poster=...>``); the mp4s keep their audio track and play in the page.
"""

import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from ltx_trainer.io import atomic_write, atomic_write_text, read_json_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): no display on servers

POSTERS_DIR = "posters"
_STEP_SAMPLE = re.compile(r"^step_(\d+)_(\d+)$")
SIGMA_KEY = re.compile(r"^loss_sigma_(\d\.\d+)_(\d\.\d+)$")


def read_metrics(path: Path) -> list[dict]:
    """Every step record (a line torn by a kill is skipped); ``null`` losses (non-finite) read as NaN."""
    return [
        {k: float("nan") if v is None else v for k, v in record.items()}
        for record in read_json_lines(path)
        if "step" in record
    ]


def _smooth(values: list[float], weight: float = 0.9) -> list[float]:
    out, last = [], values[0] if values else 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        out.append(last)
    return out


def plot_losses(metrics: list[dict], path: Path) -> Path:
    """Loss per step (raw and smoothed), per-modality losses, and the learning rate."""
    steps = [m["step"] for m in metrics]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    loss = [m["loss"] for m in metrics]
    ax_loss.plot(steps, loss, color="#bbb", lw=0.8, label="loss")
    ax_loss.plot(steps, _smooth(loss), color="#1f77b4", lw=2, label="loss (smoothed)")
    for key, color in (("loss_video", "#2ca02c"), ("loss_audio", "#d62728")):
        if any(key in m for m in metrics):
            ax_loss.plot(
                [m["step"] for m in metrics if key in m],
                _smooth([m[key] for m in metrics if key in m]),
                color=color,
                lw=1.2,
                label=key.replace("_", " ") + " (smoothed)",
            )
    ax_loss.set_ylabel("flow-matching MSE")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_lr.plot(steps, [m["lr"] for m in metrics], color="#ff7f0e")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def sigma_keys(metrics: list[dict]) -> list[str]:
    """The ``loss_sigma_<lo>_<hi>`` keys logged, in sigma order."""
    return sorted({k for m in metrics for k in m if SIGMA_KEY.match(k)})


def plot_sigma_losses(metrics: list[dict], path: Path) -> Path | None:
    """Smoothed loss per sigma quarter over the steps (None when the run logged none)."""
    keys = sigma_keys(metrics)
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for key in keys:
        lo, hi = SIGMA_KEY.match(key).groups()
        points = [(m["step"], m[key]) for m in metrics if key in m and not math.isnan(m[key])]
        if points:
            xs, ys = [s for s, _ in points], _smooth([v for _, v in points])
            ax.plot(xs, ys, lw=1.4, marker="." if len(points) < 30 else None, label=f"sigma {lo}-{hi}")
    ax.set_ylabel("loss (smoothed)")
    ax.set_xlabel("optimizer step")
    ax.legend(ncol=4, fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def loss_table(metrics: list[dict]) -> list[tuple[str, float, float]]:
    """(what, mean over the first tenth of the steps, mean over the last tenth) for the loss, each modality and
    each sigma quarter."""
    if not metrics:
        return []
    tenth = max(1, len(metrics) // 10)
    first, last = metrics[:tenth], metrics[-tenth:]
    keys = [k for k in ("loss", "loss_video", "loss_audio") if any(k in m for m in metrics)] + sigma_keys(metrics)
    rows = []
    for key in keys:
        label = key.replace("_", " ")
        if match := SIGMA_KEY.match(key):
            label = f"loss at sigma {match.group(1)}-{match.group(2)}"
        rows.append((label, _mean([m[key] for m in first if key in m]), _mean([m[key] for m in last if key in m])))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------------------------------
def poster(video: Path, output_dir: Path) -> Path | None:
    """``posters/<path>.png``: the middle frame of an mp4 in ``output_dir`` (made once, kept while newer than the
    video); None when the video can't be read."""
    from ltx_trainer.data.media import MediaError, read_video, write_image

    video = Path(video)
    try:
        rel = video.resolve().relative_to(Path(output_dir).resolve())
    except ValueError:
        rel = Path(video.name)
    out = Path(output_dir) / POSTERS_DIR / rel.with_suffix(".png")
    if out.is_file() and out.stat().st_mtime >= video.stat().st_mtime:
        return out
    try:
        frames, _ = read_video(video)
    except (MediaError, OSError):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, frames[len(frames) // 2])
    return out


def _rel(path: Path, output_dir: Path) -> str:
    return html.escape(Path(os.path.relpath(Path(path).resolve(), Path(output_dir).resolve())).as_posix())


def figure_html(href: str, suffix: str, caption: str, width: int, poster: str | None = None, lazy: bool = False) -> str:
    """One ``<figure>`` of a media file by its ``suffix``: an mp4 as a looping video (with its ``poster`` image;
    ``lazy``: loaded on play), a wav as an audio player, anything else as an image. ``href``, ``poster`` and
    ``caption`` are HTML already (escaped). The run report and the pipeline report show their media through it."""
    if suffix == ".mp4":
        attrs = (f' poster="{poster}"' if poster is not None else "") + " controls loop" + (' preload="none"' * lazy)
        body = f'<video src="{href}"{attrs} width="{width}"></video>'
    elif suffix == ".wav":
        body = f'<audio src="{href}" controls></audio>'
    else:
        body = f'<img src="{href}" width="{width}">'
    return f"<figure>{body}<figcaption>{caption}</figcaption></figure>"


def media_html(path: Path, output_dir: Path, caption: str = "", width: int = 192) -> str:
    """A figure: an mp4 with its poster (and sound, loaded on play), a png, or a wav player."""
    path = Path(path)
    rel = _rel(path, output_dir)
    still = poster(path, output_dir) if path.suffix == ".mp4" else None
    still_rel = _rel(still, output_dir) if still is not None else None
    return figure_html(rel, path.suffix, html.escape(caption) or rel, width, still_rel, lazy=True)


def validation_grid(samples: Sequence[Path], output_dir: Path, prompts: Sequence[str] = ()) -> str:
    """One row per validation sample (``samples/step_<N>_<k>.*``), one column per step; other files after it."""
    rows: dict[int, dict[int, Path]] = {}
    others = []
    for sample in samples:
        match = _STEP_SAMPLE.match(Path(sample).stem)
        if match:
            rows.setdefault(int(match.group(2)), {})[int(match.group(1))] = Path(sample)
        else:
            others.append(Path(sample))
    steps = sorted({step for row in rows.values() for step in row})
    parts = []
    if rows:
        head = "".join(f"<th>{'base model (step 0)' if s == 0 else f'step {s}'}</th>" for s in steps)
        body = []
        for index in sorted(rows):
            prompt = prompts[index - 1] if 0 < index <= len(prompts) else f"sample {index}"
            cells = "".join(
                f"<td>{media_html(rows[index][s], output_dir, f'step {s}') if s in rows[index] else ''}</td>"
                for s in steps
            )
            body.append(f'<tr><th class="prompt">{html.escape(prompt)}</th>{cells}</tr>')
        parts.append(f'<table class="grid"><tr><th>prompt</th>{head}</tr>{"".join(body)}</table>')
    parts += [media_html(p, output_dir) for p in others]
    return "".join(parts) or "<p>none (validation.samples is empty or validation.interval is null)</p>"


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:+.0f} %"


def efficacy_html(efficacy: dict, output_dir: Path) -> str:
    """The before/after table: per clip the clip, the base and the trained sample, and every distance."""
    summary = efficacy["summary"]
    metrics = list(summary)
    settings = efficacy["settings"]
    head = "".join(f"<th>{html.escape(m)}<br><small>base &rarr; trained (closer)</small></th>" for m in metrics)
    rows = []
    for clip, caption in efficacy["captions"].items():
        media = efficacy.get("media", {}).get(clip, {})
        cells = "".join(
            f"<td>{media_html(Path(output_dir) / media[k], output_dir, label) if k in media else ''}</td>"
            for k, label in (("clip", "training clip"), ("base", "base model"), ("tuned", "trained"))
        )
        numbers = "".join(
            "<td>{:.4g} &rarr; {:.4g} ({})</td>".format(
                summary[m]["per_clip"][clip]["base"],
                summary[m]["per_clip"][clip]["tuned"],
                _pct(summary[m]["per_clip"][clip]["closer"]),
            )
            if clip in summary[m]["per_clip"]
            else "<td></td>"
            for m in metrics
        )
        label = html.escape(clip) + (f"<br><small>{html.escape(caption)}</small>" if caption else "")
        rows.append(f'<tr><th class="prompt">{label}</th>{cells}{numbers}</tr>')
    means = "".join(
        f"<td>{summary[m]['base']:.4g} &rarr; {summary[m]['tuned']:.4g} ({_pct(summary[m]['closer'])})</td>"
        for m in metrics
    )
    rows.append(f'<tr><th>mean</th><td colspan="3"></td>{means}</tr>')
    note = (
        f"{html.escape(efficacy['label'])}: each clip sampled from its caption with seeds {settings['seeds']} "
        f"({settings['steps']} Euler steps, guidance off) with the base weights and with the trained ones; distances "
        "to the clip (lower is closer), averaged over the seeds; the media are the first seed's."
    )
    return (
        f'<p class="note">{note}</p><table class="grid"><tr><th>clip</th><th>training clip</th><th>base model</th>'
        f"<th>trained</th>{head}</tr>{''.join(rows)}</table>"
    )


# ---------------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------------
STYLE = """body{font-family:sans-serif;max-width:1280px;margin:2em auto;padding:0 1em}
th{text-align:left;padding-right:1em}
figure{display:inline-block;margin:.3em;vertical-align:top}figcaption{font-size:small;color:#555}
video,img{image-rendering:pixelated;background:#222}pre{background:#f6f6f6;padding:1em;overflow:auto}
table.grid{border-collapse:collapse}table.grid td,table.grid th{border:1px solid #ddd;padding:.3em;vertical-align:top}
th.prompt{max-width:16em;font-weight:normal}.verdict{font-size:1.4em;font-weight:bold;margin:.5em 0}
.note{color:#555}"""


def write_report(
    output_dir: Path,
    title: str,
    config_yaml: str,
    samples: list[Path],
    summary: dict,
    *,
    efficacy: dict | None = None,
    prompts: Sequence[str] = (),
    name: str = "report.html",
) -> Path:
    """``report.html`` next to the run: verdict, summary, before/after, validation grid, losses, config.

    Args:
        samples: validation samples (``samples/step_<N>_<k>.*``) and any other media to show.
        summary: rows of the summary table.
        efficacy: ``Efficacy.to_dict()`` of a before/after comparison, or None.
        prompts: the validation prompts (row ``k`` of the grid is ``prompts[k - 1]``).
        name: the page's file name in ``output_dir``.
    """
    output_dir = Path(output_dir)
    metrics = read_metrics(output_dir / "metrics.jsonl")
    curve = plot_losses(metrics, output_dir / "loss.png") if metrics else None
    sigma_curve = plot_sigma_losses(metrics, output_dir / "loss_sigma.png") if metrics else None
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    verdict = f'<p class="verdict">{html.escape(efficacy["verdict"])}</p>' if efficacy else ""
    losses = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{first:.4f}</td><td>{last:.4f}</td></tr>"
        for label, first, last in loss_table(metrics)
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>{verdict}<table>{rows}</table>
<h2>Before and after</h2>{efficacy_html(efficacy, output_dir) if efficacy else "<p>no comparison in this report</p>"}
<h2>Validation samples</h2>{validation_grid(samples, output_dir, prompts)}
<h2>Loss</h2>{'<img src="loss.png" width="800">' if curve else "<p>no steps logged</p>"}
{'<h3>Loss by sigma</h3><img src="loss_sigma.png" width="800">' if sigma_curve else ""}
{f'<table class="grid"><tr><th></th><th>first 10 % of steps</th><th>last 10 %</th></tr>{losses}</table>' * bool(losses)}
<h2>Config</h2><pre>{html.escape(config_yaml)}</pre></body></html>"""
    return atomic_write_text(output_dir / name, page)
