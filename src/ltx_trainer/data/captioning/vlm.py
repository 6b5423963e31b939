"""Vision-language captioners run in-process with transformers: Qwen2.5-VL, Qwen3-VL, Qwen2.5-Omni, Qwen3-Omni."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import CAPTION_STYLES, WHISPER_SAMPLE_RATE, CaptionError, CaptionStyle
from ltx_trainer.data.captioning.inputs import _fit_pixels, _read_mono, media_kind, sample_frames
from ltx_trainer.data.captioning.text import add_speech, caption_prompt
from ltx_trainer.data.captioning.whisper import WhisperCaptioner, _resolve_device
from ltx_trainer.data.media import MediaError

if TYPE_CHECKING:
    import torch
    from PIL import Image


# model_type in config.json -> (transformers class, hears audio)
_VLM_CLASSES: dict[str, tuple[str, bool]] = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", False),
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", False),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", False),
    "qwen3_vl_moe": ("Qwen3VLMoeForConditionalGeneration", False),
    # Omni checkpoints hold a thinker (text out) and a talker (speech out); captioning loads the thinker only.
    "qwen2_5_omni": ("Qwen2_5OmniThinkerForConditionalGeneration", True),
    "qwen3_omni_moe": ("Qwen3OmniMoeThinkerForConditionalGeneration", True),
}
_DTYPES = ("auto", "bfloat16", "float16", "float32")


def _config_value(config: Any, *names: str) -> Any:
    """The first of ``names`` set on ``config`` or its ``thinker_config`` (Omni)."""
    for holder in (config, getattr(config, "thinker_config", None)):
        for name in names:
            value = getattr(holder, name, None) if holder is not None else None
            if value is not None:
                return value
    return None


class VLMCaptioner:
    """Caption with a Qwen vision-language model run in-process through ``transformers``.

    Supported: Qwen2.5-VL, Qwen3-VL (dense and MoE) and the audio-visual Qwen2.5-Omni and Qwen3-Omni (their thinker;
    the speech-output talker is not loaded), which also hear the soundtrack. Any other image-text-to-text model goes
    through ``AutoModelForImageTextToText`` and its processor.

    Videos are sampled to ``num_frames`` evenly spaced frames with PyAV. When the model's full processor loads (it
    needs ``torchvision`` for video), the frames go in as one video with its timing; otherwise they go in as a
    sequence of images through the image processor and tokenizer, which needs no ``torchvision``.

    Args:
        model: Local model folder (``config.json`` + weights + processor files), e.g. from
            ``hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir models/qwen2.5-vl``.
        style: ``"dense"`` or ``"sections"``.
        num_frames: Frames sampled per video.
        max_pixels: Frames larger than this many pixels are downscaled first (bounds the visual tokens).
        max_new_tokens: Generation limit.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU), ``bfloat16``, ``float16`` or ``float32``.
        load_in_8bit: Load the weights in 8 bits with ``bitsandbytes`` (CUDA only); about half the memory of bf16.
        use_audio: Let Omni models hear the soundtrack.
        max_audio_seconds: Audio beyond this is not heard.
        prompt: Replace the built-in instruction (:func:`caption_prompt`).
        speech: A :class:`WhisperCaptioner` whose transcript is given to the model and quoted in the caption.
        do_sample: Sample instead of greedy decoding (with ``temperature``).
        temperature: Sampling temperature.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        style: CaptionStyle = "dense",
        num_frames: int = 8,
        max_pixels: int | None = 640 * 360,
        max_new_tokens: int = 512,
        device: str = "auto",
        dtype: str = "auto",
        load_in_8bit: bool = False,
        use_audio: bool = True,
        max_audio_seconds: float = 30.0,
        prompt: str | None = None,
        speech: WhisperCaptioner | None = None,
        do_sample: bool = False,
        temperature: float = 0.7,
    ) -> None:
        import torch
        import transformers

        path = Path(model)
        if not (path / "config.json").is_file():
            raise CaptionError(
                f"{path}: not a model folder (no config.json). Download the model first, e.g. "
                f"`hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir {path}`"
            )
        if dtype not in _DTYPES:
            raise CaptionError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        if style not in CAPTION_STYLES:
            raise CaptionError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
        self.path = path
        self.style: CaptionStyle = style
        self.num_frames = num_frames
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.max_audio_seconds = max_audio_seconds
        self.prompt = prompt
        self.speech = speech
        self.generate_kwargs: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            self.generate_kwargs["temperature"] = temperature

        self.device = _resolve_device(device)
        on_gpu = self.device.startswith("cuda")
        if dtype == "auto":
            self.dtype = torch.bfloat16 if on_gpu else torch.float32
        else:
            self.dtype = getattr(torch, dtype)

        try:
            self.config = transformers.AutoConfig.from_pretrained(path)
        except (ValueError, KeyError) as e:  # a model type this transformers does not know
            raise CaptionError(
                f"{path / 'config.json'}: transformers {transformers.__version__} cannot read it ({e}); "
                "upgrade transformers"
            ) from e
        self.model_type: str = self.config.model_type
        class_name, self.hears_audio = _VLM_CLASSES.get(self.model_type, ("AutoModelForImageTextToText", False))
        self.use_audio = use_audio and self.hears_audio
        model_class = getattr(transformers, class_name, None)
        if model_class is None:
            raise CaptionError(
                f"{path}: model type {self.model_type!r} needs transformers.{class_name}, which transformers "
                f"{transformers.__version__} does not have; upgrade transformers"
            )
        load_kwargs: dict[str, Any] = {"dtype": self.dtype}
        if load_in_8bit:
            if not on_gpu:
                raise CaptionError("8-bit loading (bitsandbytes) needs a CUDA GPU; drop --8bit to run on the CPU")
            if importlib.util.find_spec("bitsandbytes") is None:
                raise CaptionError(
                    "8-bit loading needs bitsandbytes: pip install 'ltx-trainer[quantization]' (or bitsandbytes)"
                )
            load_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        if on_gpu:
            load_kwargs["device_map"] = {"": self.device}
        self._load_processor(transformers)
        logger.info(f"loading {self.model_type} captioner from {path} ({self.device}, {self.dtype})")
        try:
            self.model = model_class.from_pretrained(path, **load_kwargs).eval()
        except OSError as e:
            raise CaptionError(f"{path}: cannot load the model weights ({e})") from e
        self._forward_params = set(inspect.signature(self.model.forward).parameters)

    # -- processor -----------------------------------------------------------------------------------------------------

    def _load_processor(self, transformers: Any) -> None:
        """Load the full multimodal processor, else the tokenizer + image processor (+ audio feature extractor)."""
        self.processor = None
        try:
            processor = transformers.AutoProcessor.from_pretrained(self.path)
        except Exception as e:  # without torchvision the video processor (and so the processor) cannot be built
            reason = (
                "torchvision is not installed"
                if importlib.util.find_spec("torchvision") is None
                else " ".join(f"{type(e).__name__}: {e}".split())[:300]
            )
            logger.info(
                f"{self.path}: the model's video processor is unavailable ({reason}); sending the sampled frames as "
                "separate images (pip install torchvision for native video input)"
            )
        else:
            if isinstance(processor, transformers.ProcessorMixin):
                self.processor = processor
        self.tokenizer = (
            self.processor.tokenizer
            if self.processor is not None
            else transformers.AutoTokenizer.from_pretrained(self.path)
        )
        self.chat_template = self._find_chat_template()
        if self.processor is not None:
            return
        if self.model_type not in _VLM_CLASSES:
            raise CaptionError(
                f"{self.path}: model type {self.model_type!r} needs its full processor, which did not load; "
                "install torchvision (pip install torchvision) or use a Qwen-VL / Qwen-Omni model"
            )
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(self.path)
        self.feature_extractor = None
        if self.use_audio:
            self.feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(self.path)

    def _find_chat_template(self) -> str | None:
        for source in (self.processor, self.tokenizer):
            template = getattr(source, "chat_template", None)
            if isinstance(template, dict):  # named templates
                template = template.get("default") or next(iter(template.values()), None)
            if isinstance(template, str) and template:
                return template
        jinja = self.path / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        as_json = self.path / "chat_template.json"
        if as_json.is_file():
            return json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
        return None

    def _render(self, messages: list[dict[str, Any]]) -> str:
        if self.chat_template is None:
            raise CaptionError(f"{self.path}: the model has no chat template (chat_template.jinja/json)")
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    # -- inputs --------------------------------------------------------------------------------------------------------

    def _token(self, *names: str) -> str:
        token_id = _config_value(self.config, *names)
        if token_id is None:
            raise CaptionError(f"{self.path}: config.json has no {names[0]}")
        return self.tokenizer.convert_ids_to_tokens(int(token_id))

    def _audio_token_count(self, feature_lengths: torch.Tensor) -> list[int]:
        """Audio tokens the Omni audio encoder makes of ``feature_lengths`` mel frames."""
        lengths = feature_lengths.long()
        if self.model_type == "qwen3_omni_moe":
            window = int(_config_value(self.config.thinker_config.audio_config, "n_window") or 50) * 2
            rest = lengths % window
            reduced = (rest - 1) // 2 + 1
            counts = ((reduced - 1) // 2 + 1 - 1) // 2 + 1 + (lengths // window) * 13
        else:
            counts = ((lengths - 1) // 2 + 1 - 2) // 2 + 1
        return [int(c) for c in counts]

    def _manual_inputs(self, images: list[Image.Image], audio: np.ndarray | None, prompt: str) -> dict[str, Any]:
        """Model inputs from the tokenizer, image processor and feature extractor (no full processor needed)."""
        import torch

        content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
        if audio is not None:
            content.append({"type": "audio"})
        content.append({"type": "text", "text": prompt})
        text = self._render([{"role": "user", "content": content}])
        inputs: dict[str, Any] = {}
        expansions: list[tuple[str, list[int]]] = []
        if images:
            pixels = self.image_processor(images=images, return_tensors="pt")
            merge = int(getattr(self.image_processor, "merge_size", 1) or 1)
            inputs["pixel_values"] = pixels["pixel_values"]
            inputs["image_grid_thw"] = pixels["image_grid_thw"]
            counts = (pixels["image_grid_thw"].prod(-1) // merge**2).tolist()
            expansions.append((self._token("image_token_id", "image_token_index"), counts))
        if audio is not None:
            features = self.feature_extractor(
                audio,
                sampling_rate=WHISPER_SAMPLE_RATE,
                return_attention_mask=True,
                padding="max_length",
                return_tensors="pt",
            )
            inputs["input_features"] = features["input_features"]
            inputs["feature_attention_mask"] = features["attention_mask"]
            counts = self._audio_token_count(features["attention_mask"].sum(-1))
            expansions.append((self._token("audio_token_id", "audio_token_index"), counts))
        for token, counts in expansions:
            pieces = text.split(token)
            if len(pieces) - 1 != len(counts):
                raise CaptionError(
                    f"{self.path}: the chat template wrote {len(pieces) - 1} {token} placeholders for {len(counts)} "
                    "inputs"
                )
            text = pieces[0] + "".join(token * n + piece for n, piece in zip(counts, pieces[1:], strict=True))
        encoded = self.tokenizer([text], return_tensors="pt")
        inputs.update(encoded)
        if "mm_token_type_ids" in self._forward_params and images:
            image_id = int(_config_value(self.config, "image_token_id", "image_token_index"))
            inputs["mm_token_type_ids"] = (encoded["input_ids"] == image_id).to(torch.int32)
        return inputs

    def _processor_inputs(
        self, images: list[Image.Image], as_video: bool, fps: float, audio: np.ndarray | None, prompt: str
    ) -> dict[str, Any]:
        """Model inputs from the model's own processor: frames as one video with their timing when it takes video."""
        from transformers.video_utils import VideoMetadata

        content: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        if as_video and getattr(self.processor, "video_processor", None) is not None:
            frames = np.stack([np.asarray(image) for image in images])
            if len(frames) % 2:  # Qwen video patches pair frames in time
                frames = frames[:-1] if len(frames) > 1 else np.concatenate([frames, frames])
            content.append({"type": "video"})
            kwargs["videos"] = [frames]
            kwargs["video_metadata"] = [
                VideoMetadata(total_num_frames=len(frames), fps=fps, frames_indices=list(range(len(frames))))
            ]
            kwargs["do_sample_frames"] = False
        elif images:
            content.extend({"type": "image"} for _ in images)
            kwargs["images"] = images
        if audio is not None:
            content.append({"type": "audio"})
            kwargs["audio"] = [audio]
        content.append({"type": "text", "text": prompt})
        text = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
        )
        return dict(self.processor(text=[text], return_tensors="pt", **kwargs))

    # -- captioning ----------------------------------------------------------------------------------------------------

    def caption(self, media: Path) -> str:
        import torch

        media = Path(media)
        kind = media_kind(media)
        if kind is None:
            raise MediaError(media, "not a video, image or audio file")
        audio = None
        if self.use_audio:
            audio = _read_mono(media, WHISPER_SAMPLE_RATE, self.max_audio_seconds)
            if audio is not None and not np.any(audio):
                audio = None  # digital silence: nothing to hear
        if kind == "audio" and audio is None:
            raise CaptionError(
                f"{media}: audio files need an audio-capable model (Qwen2.5-Omni / Qwen3-Omni) or --backend whisper"
            )
        frames, fps = (None, 1.0) if kind == "audio" else sample_frames(media, self.num_frames)
        images = [_fit_pixels(frame, self.max_pixels) for frame in frames] if frames is not None else []
        transcript = self.speech.transcribe(media) if self.speech is not None else ""
        prompt = self.prompt or caption_prompt(
            self.style, kind, has_audio=audio is not None, transcript=transcript or None
        )
        if self.processor is not None:
            inputs = self._processor_inputs(images, kind == "video", fps, audio, prompt)
        else:
            inputs = self._manual_inputs(images, audio, prompt)
        inputs = {
            key: (
                value.to(self.model.device, self.dtype if value.is_floating_point() else None)
                if isinstance(value, torch.Tensor)
                else value
            )
            for key, value in inputs.items()
        }
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, **self.generate_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        text = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)[0]
        text = re.sub(r"<think>.*?</think>", " ", text, flags=re.DOTALL).strip()
        return add_speech(text, transcript, self.style)
