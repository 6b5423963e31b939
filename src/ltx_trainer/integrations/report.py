"""What people look at after a run: a loss-curve PNG and a one-page HTML report with samples."""

import html
from pathlib import Path

import matplotlib

from ltx_trainer.io import atomic_write, atomic_write_text, read_json_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): no display on servers


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


def write_report(output_dir: Path, title: str, config_yaml: str, samples: list[Path], summary: dict) -> Path:
    """``report.html`` next to the run: summary, loss curve, samples (video/audio/image), config."""
    output_dir = Path(output_dir)
    metrics = read_metrics(output_dir / "metrics.jsonl")
    curve = plot_losses(metrics, output_dir / "loss.png") if metrics else None
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    media = []
    for sample in samples:
        rel = html.escape(sample.relative_to(output_dir).as_posix())
        if sample.suffix == ".mp4":
            media.append(
                f'<figure><video src="{rel}" controls loop width="320"></video><figcaption>{rel}</figcaption></figure>'
            )
        elif sample.suffix == ".wav":
            media.append(f'<figure><audio src="{rel}" controls></audio><figcaption>{rel}</figcaption></figure>')
        else:
            media.append(f'<figure><img src="{rel}" width="320"><figcaption>{rel}</figcaption></figure>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
figure{{display:inline-block;margin:.5em}}pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>{html.escape(title)}</h1><table>{rows}</table>
{'<h2>Loss</h2><img src="loss.png" width="800">' if curve else ""}
<h2>Samples</h2>{"".join(media) or "<p>none</p>"}
<h2>Config</h2><pre>{html.escape(config_yaml)}</pre></body></html>"""
    return atomic_write_text(output_dir / "report.html", page)
