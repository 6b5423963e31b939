"""The files of an LTX-2.5 split release: what each is, where the others are, and whether they belong together.

The release is one file per component, in this layout (README of ``Lightricks/LTX-2``)::

    diffusion_models/ltx-2.5-<size>-{dev,distilled}-transformer-<dtype>.safetensors   DiT + text connectors
    text_encoders/gemma4-<size>-with-proj-ltx-2.5-<dtype>.safetensors    Gemma-4 + text projection + tokenizer
    vae/ltx-2.5-video-vae-<dtype>.safetensors         video VAE, diffusion decoder
    vae/ltx-2.5-video-vae-conv-<dtype>.safetensors    video VAE, convolutional decoder
    vae/ltx-2.5-audio-vae-<dtype>.safetensors         audio VAE + vocoder

A user passes the release folder or the transformer file; the other files are found by what they hold (their keys and
``__metadata__``), in the release folder's subfolders and next to the transformer, so renamed files still work.
``model.text_encoder_path`` / ``video_vae_path`` / ``audio_vae_path`` name a file explicitly instead. The text
encoder may also be a Gemma-4 Hugging Face folder, but the text projection exists only in the packed file, so that
file must be found as well (as ltx-core's trainer requires).

Pairing rule (ltx-core 1.2.0 ``_check_gemma_version``): a transformer that declares
``gemma_source_checkpoint.gemma_version`` needs a text encoder whose config declares the same ``gemma_version``; one
that declares none but has ``model_version >= 2.4`` is refused.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltx25_text, ltx25_video_vae
from ltx_trainer.models.sources import SingleFile, read_json

TRANSFORMER_KEY = "model.diffusion_model.audio_patchify_proj"
SUBFOLDERS = ("diffusion_models", "text_encoders", "vae")
MIN_PAIRED_VERSION = (2, 4, 0)


@dataclass(frozen=True)
class SplitRelease:
    """The files of one LTX-2.5 model.

    Attributes:
        transformer: the transformer file (DiT + text connectors).
        projection: the packed text-encoder file (its text projection; also the Gemma-4 unless ``gemma_dir``).
        gemma_dir: a Gemma-4 Hugging Face folder to take the text encoder from instead, or None.
        video_vae: the video VAE file with the diffusion decoder, or None.
        video_vae_conv: the video VAE file with the convolutional decoder, or None.
        audio_vae: the audio VAE + vocoder file, or None.
    """

    transformer: SingleFile
    projection: SingleFile
    gemma_dir: Path | None = None
    video_vae: SingleFile | None = None
    video_vae_conv: SingleFile | None = None
    audio_vae: SingleFile | None = None

    @property
    def path(self) -> Path:
        return self.transformer.path

    @property
    def text_encoder(self) -> Path:
        """What the text encoder is read from (the Gemma folder, or the packed file)."""
        return self.gemma_dir or self.projection.path


def is_split_transformer(sf: SingleFile) -> bool:
    """An LTX-2 transformer without the VAE sections of the single-file layout."""
    return any(k.startswith(TRANSFORMER_KEY) for k in sf.keys) and not sf.has("vae.") and not sf.has("audio_vae.")


def kind(sf: SingleFile) -> str | None:
    """What a file of the release is: ``"transformer"``, ``"text_encoder"``, ``"video_vae"`` (diffusion decoder),
    ``"video_vae_conv"``, ``"audio_vae"``; None for anything else."""
    if ltx25_text.is_packed_text_encoder(sf.keys):
        return "text_encoder"
    if is_split_transformer(sf):
        return "transformer"
    if sf.has("model.diffusion_model."):
        return None  # a single file with everything: not part of a split release
    if sf.has("vae."):
        return "video_vae" if ltx25_video_vae.is_diffusion_vae(sf.config.get("vae", {})) else "video_vae_conv"
    if sf.has("audio_vae.") or sf.has("vocoder."):
        return "audio_vae"
    return None


def parse_version(value: object) -> tuple[int, ...] | None:
    """``"2.5.0"`` -> (2, 5, 0); a bare number JSON-parsed by ltx-core (2.5) is read the same way."""
    try:
        return tuple(int(p) for p in str(value).strip().split("."))
    except ValueError:
        return None


def release_root(transformer: Path) -> Path:
    """The release folder of a transformer file: the parent of ``diffusion_models/``, else the file's folder."""
    folder = transformer.resolve().parent
    return folder.parent if folder.name == "diffusion_models" else folder


def _candidates(root: Path, transformer: Path) -> list[Path]:
    folders = [root, *(root / sub for sub in SUBFOLDERS), transformer.resolve().parent]
    seen, files = set(), []
    for folder in folders:
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files.append(path)
    return files


def transformer_in(folder: Path) -> Path | None:
    """The one split LTX-2.5 transformer of a release folder (``diffusion_models/`` or the folder itself), None if none.

    Raises:
        ModelLoadError: several transformers (dev and distilled): the user must pick one.
    """
    found = []
    for sub in (folder / "diffusion_models", folder):
        for path in sorted(sub.glob("*.safetensors")) if sub.is_dir() else []:
            try:
                sf = SingleFile(path)
                version = parse_version(sf.metadata.get("model_version", "")) or ()
                if kind(sf) == "transformer" and version >= MIN_PAIRED_VERSION:
                    found.append(path)
            except ModelLoadError:
                continue
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise ModelLoadError(f"{folder}: {len(found)} LTX-2.5 transformers ({names}); pass the one to use as the model")
    return found[0] if found else None


def _gemma_config(path: Path) -> dict:
    if path.is_dir():
        return read_json(path / "config.json")
    return ltx25_text.gemma_config_of(SingleFile(path).metadata, str(path))


def check_pairing(transformer: SingleFile, text_encoder: Path, gemma_config: dict) -> None:
    """ltx-core's Gemma/transformer pairing rule (module docstring).

    Raises:
        ModelLoadError: the versions differ, or a >= 2.4 transformer declares none; naming both files.
    """
    declared = transformer.metadata.get("gemma_source_checkpoint")
    te_version = ltx25_text.gemma_version(gemma_config)
    if declared is not None:
        try:
            wanted = (
                json.loads(declared).get("gemma_version") if isinstance(declared, str) else declared["gemma_version"]
            )
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as e:
            raise ModelLoadError(
                f"{transformer.path}: __metadata__['gemma_source_checkpoint'] is not {{\"gemma_version\": ...}} ({e})"
            ) from e
        if str(wanted) != str(te_version):
            raise ModelLoadError(
                f"{text_encoder}: text encoder gemma_version {te_version!r} does not match {wanted!r}, the Gemma "
                f"{transformer.path.name} was trained with; use the text-encoder file released with this transformer"
            )
        return
    version = parse_version(transformer.metadata.get("model_version", ""))
    if version is not None and version >= MIN_PAIRED_VERSION:
        if te_version is None:
            logger.warning(
                "%s and %s declare no gemma_version; their pairing is not checked", transformer.path, text_encoder
            )
            return
        raise ModelLoadError(
            f"{transformer.path}: model_version {'.'.join(map(str, version))} but no "
            "__metadata__['gemma_source_checkpoint'], so it can't be paired with a Gemma; re-download the transformer"
        )


def find_release(
    transformer_path: Path,
    text_encoder: Path | None = None,
    video_vae: Path | None = None,
    audio_vae: Path | None = None,
) -> SplitRelease:
    """Collect the files of the release ``transformer_path`` belongs to (explicit paths win over discovery).

    Raises:
        ModelLoadError: no packed text-encoder file, a file of the wrong kind where one was named, or a Gemma
            version mismatch; each names the file.
    """
    transformer = SingleFile(transformer_path)
    root = release_root(transformer.path)
    found: dict[str, list[SingleFile]] = {}
    for path in _candidates(root, transformer.path):
        try:
            sf = SingleFile(path)
        except ModelLoadError:
            continue
        found.setdefault(kind(sf) or "", []).append(sf)

    def named(path: Path | None, want: tuple[str, ...], key: str) -> SingleFile | None:
        if path is None:
            return None
        sf = SingleFile(path)
        if kind(sf) not in want:
            raise ModelLoadError(
                f"{path}: model.{key} is not an LTX-2.5 {' or '.join(want)} file ({kind(sf) or 'unknown'})"
            )
        return sf

    gemma_dir = None
    projection = None
    if text_encoder is not None and Path(text_encoder).is_dir():
        gemma_dir = Path(text_encoder)
    elif text_encoder is not None:
        projection = named(Path(text_encoder), ("text_encoder",), "text_encoder_path")
    if projection is None:
        packed = found.get("text_encoder", [])
        if not packed:
            where = f"{root}/text_encoders" if (root / "text_encoders").is_dir() else str(root)
            hint = (
                f" ({gemma_dir} is a Gemma folder: the text projection is only in the packed file)" if gemma_dir else ""
            )
            raise ModelLoadError(
                f"{transformer.path}: an LTX-2.5 split transformer needs its text-encoder file "
                f"(text_encoders/gemma4-*-with-proj-ltx-2.5-*.safetensors: Gemma-4 + text projection); none found in "
                f"{where}{hint}. Download it next to the transformer or pass it as model.text_encoder_path."
            )
        projection = _matching(transformer, packed)
    check_pairing(transformer, projection.path, ltx25_text.gemma_config_of(projection.metadata, str(projection.path)))
    if gemma_dir is not None:
        check_pairing(transformer, gemma_dir, _gemma_config(gemma_dir))

    explicit_video = named(video_vae, ("video_vae", "video_vae_conv"), "video_vae_path")
    videos = (
        [explicit_video] if explicit_video else [*found.get("video_vae", [])[:1], *found.get("video_vae_conv", [])[:1]]
    )
    audio = named(audio_vae, ("audio_vae",), "audio_vae_path") or next(iter(found.get("audio_vae", [])), None)
    return SplitRelease(
        transformer=transformer,
        projection=projection,
        gemma_dir=gemma_dir,
        video_vae=next((v for v in videos if kind(v) == "video_vae"), None),
        video_vae_conv=next((v for v in videos if kind(v) == "video_vae_conv"), None),
        audio_vae=audio,
    )


def _matching(transformer: SingleFile, packed: list[SingleFile]) -> SingleFile:
    """The packed text encoder whose gemma_version the transformer declares (the first if it declares none)."""
    if len(packed) == 1:
        return packed[0]
    for sf in packed:
        try:
            check_pairing(transformer, sf.path, ltx25_text.gemma_config_of(sf.metadata, str(sf.path)))
            return sf
        except ModelLoadError:
            continue
    return packed[0]  # check_pairing then names the mismatch
