"""The released base models on the Hugging Face Hub, by family and version: what a model card of trained weights
says about its base (``integrations/hub_card.py``), kept here because only ``models/`` knows the families.

- LTX-2 ("2.0") and LTX-2.3 are published as ``Lightricks/LTX-2`` and ``Lightricks/LTX-2.3`` under the LTX-2
  Community License Agreement (the Hub label ``license: other`` + ``license_name: ltx-2-community-license-agreement``,
  as on Lightricks' own cards); the official ``ltx-pipelines`` package runs them, and diffusers as ``LTX2Pipeline``.
- Every LTX-Video 0.9.x single file lives in ``Lightricks/LTX-Video`` (``LTXPipeline`` in diffusers; diffusers
  copies exist for 0.9.0/0.9.1 in that repo and for 0.9.5 in ``Lightricks/LTX-Video-0.9.5``). Its licence depends on
  the release, so the card links the base model's page instead of naming one.

Which family and version a weights file was trained on comes from the file itself: the base recorded in our LoRA
headers (``lora_files.BASE_FAMILY_KEY``), or the checkpoint's own detection for a full fine-tune.
"""

from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from ltx_trainer.models.lora_files import BASE_FAMILY_KEY, BASE_VERSION_KEY

LTX2_LICENSE_NAME = "ltx-2-community-license-agreement"
LTX2_LICENSE_LINK = "https://github.com/Lightricks/LTX-2/blob/main/LICENSE"


@dataclass(frozen=True)
class HubBase:
    """A released base model as a model card names it.

    Attributes:
        repo_id: the Lightricks repository (``base_model`` of the card).
        name: what people call it (``LTX-2.3``).
        license_name: the Hub's ``license_name`` for ``license: other``, or None when it depends on the release.
        license_link: where the licence text is.
        license_note: one sentence for the card body.
        diffusers_pipeline: the diffusers pipeline class that runs it.
        diffusers_repo: a repository in diffusers layout (``model_index.json``), or None when none is known.
        ltx_pipelines: whether the official ``ltx-pipelines`` package runs it.
    """

    repo_id: str
    name: str
    license_name: str | None
    license_link: str
    license_note: str
    diffusers_pipeline: str
    diffusers_repo: str | None
    ltx_pipelines: bool


def _ltx2(repo_id: str, name: str, diffusers_repo: str | None) -> HubBase:
    return HubBase(
        repo_id=repo_id,
        name=name,
        license_name=LTX2_LICENSE_NAME,
        license_link=LTX2_LICENSE_LINK,
        license_note=(
            f"Derived from {name}, so it is distributed under the LTX-2 Community License Agreement "
            f"({LTX2_LICENSE_LINK}), including its use restrictions; read it before commercial use."
        ),
        diffusers_pipeline="LTX2Pipeline",
        diffusers_repo=diffusers_repo,
        ltx_pipelines=True,
    )


def _ltxv(version: str, diffusers_repo: str | None) -> HubBase:
    return HubBase(
        repo_id="Lightricks/LTX-Video",
        name=f"LTX-Video {version}",
        license_name=None,
        license_link="https://huggingface.co/Lightricks/LTX-Video",
        license_note=(
            f"Derived from LTX-Video ({version} architecture), so the licence of the release it was trained on applies "
            "(see https://huggingface.co/Lightricks/LTX-Video); read it before commercial use."
        ),
        diffusers_pipeline="LTXPipeline",
        diffusers_repo=diffusers_repo,
        ltx_pipelines=False,
    )


_RELEASES: dict[tuple[str, str], HubBase] = {
    ("ltx2", "2.0"): _ltx2("Lightricks/LTX-2", "LTX-2", "Lightricks/LTX-2"),
    ("ltx2", "2.3"): _ltx2("Lightricks/LTX-2.3", "LTX-2.3", None),
    ("ltxv", "0.9.0"): _ltxv("0.9.0", "Lightricks/LTX-Video"),
    ("ltxv", "0.9.1"): _ltxv("0.9.1", "Lightricks/LTX-Video"),
    ("ltxv", "0.9.5"): _ltxv("0.9.5", "Lightricks/LTX-Video-0.9.5"),
    ("ltxv", "0.9.7"): _ltxv("0.9.7", None),
}


def released_base(family: str, version: str) -> HubBase | None:
    """The released model of ``family`` ``version`` (``FamilySpec`` values), or None for one we don't know."""
    return _RELEASES.get((family, version))


def trained_on(weights: str | Path) -> tuple[str, str] | None:
    """(family, version) a weights file was trained on: our LoRA header, else the checkpoint's own detection.

    Returns None for a LoRA without our header (made by another tool) or a file no family recognises.
    """
    from ltx_trainer.models.errors import ModelLoadError
    from ltx_trainer.models.families import detect

    path = Path(weights)
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
        is_lora = any(".lora_" in key for key in f.keys())
    if BASE_FAMILY_KEY in metadata and BASE_VERSION_KEY in metadata:
        return metadata[BASE_FAMILY_KEY], metadata[BASE_VERSION_KEY]
    if is_lora:
        return None
    try:
        spec = detect(path).spec
    except ModelLoadError:
        return None
    return spec.family, spec.version
