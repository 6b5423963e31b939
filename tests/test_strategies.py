"""The flexible strategy on tiny synthetic batches: token layout, per-token timesteps, loss masks, reference
positions (unscaled, spatially x k, temporally aligned), draws, frozen modalities.

Batches are ``torch.arange`` latents built here; positions come from the real ``LTX2Model`` methods, which need no
weights. Sigma is fixed at 0.5, so a noisy token is ``0.5 x0 + 0.5 noise`` and ``noise = target + x0``.
"""

from pathlib import Path

import pytest
import torch

from ltx_trainer.config import FlexibleStrategyConfig, TextToVideoConfig, VideoToVideoConfig
from ltx_trainer.data.cache import write_sample_file
from ltx_trainer.data.reference_scale import read_reference_scale
from ltx_trainer.models.base import FamilySpec
from ltx_trainer.models.latents import LatentGrid, ReferenceScale, reference_video_positions
from ltx_trainer.models.ltx2 import LTX2Model
from ltx_trainer.training.strategies import FlexibleStrategy
from ltx_trainer.training.timesteps import Fixed

MODEL = LTX2Model(FamilySpec(family="ltx2", version="2.3", has_audio=True), Path("weights-not-needed"))
CHANNELS = 4
SIGMA = 0.5
FPS = 24.0


def video(batch: int = 1, frames: int = 3, height: int = 2, width: int = 2, fps: float = FPS, sign: int = 1) -> dict:
    """``{"latents": [B, C, F', H', W'] arange, "fps": [B]}``."""
    latents = sign * torch.arange(batch * CHANNELS * frames * height * width, dtype=torch.float32)
    return {"latents": latents.reshape(batch, CHANNELS, frames, height, width), "fps": torch.full((batch,), fps)}


def audio(batch: int = 1, steps: int = 7, sign: int = 1) -> dict:
    """``{"latents": [B, 8, T, 16] arange}``."""
    return {"latents": sign * torch.arange(batch * 8 * steps * 16, dtype=torch.float32).reshape(batch, 8, steps, 16)}


def flexible(video_block: dict | None = None, audio_block: dict | None = None) -> FlexibleStrategyConfig:
    return FlexibleStrategyConfig.model_validate({"video": video_block, "audio": audio_block})


def generated(latents_dir: str = "latents", *conditions: dict) -> dict:
    return {"is_generated": True, "latents_dir": latents_dir, "conditions": list(conditions)}


REFERENCE = {"type": "reference", "latents_dir": "reference_latents"}


def data_root(root: Path, target: tuple[int, ...], reference: tuple[int, ...], ref_fps: float = FPS) -> Path:
    """One (target, reference) pair of latents ``(F', H', W')`` under ``root/.precomputed``."""
    for folder, (f, h, w), fps in (("latents", target, FPS), ("reference_latents", reference, ref_fps)):
        data = {"latents": torch.zeros(CHANNELS, f, h, w), "fps": fps, "num_frames": f, "height": h, "width": w}
        write_sample_file(root / ".precomputed" / folder / "clip.safetensors", data)
    return root


def make(config: FlexibleStrategyConfig, root: Path | None = None) -> FlexibleStrategy:
    """The strategy as the trainer builds it: the reference scale read from the data root first."""
    return FlexibleStrategy(config, read_reference_scale(config, root) if root is not None else None)


def prepare(strategy: FlexibleStrategy, batch: dict, seed: int = 0) -> dict:
    return strategy.prepare(batch, MODEL, Fixed(SIGMA), torch.Generator().manual_seed(seed))


def noisy(x0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - SIGMA) * x0 + SIGMA * (target + x0)


def test_reference_tokens_come_first_clean_at_t0_and_positions_match_the_target(tmp_path):
    strategy = make(flexible(generated("latents", REFERENCE)), data_root(tmp_path, (3, 2, 2), (3, 2, 2)))
    batch = {"video_latents": video(batch=2), "reference_latents": video(batch=2, sign=-1)}
    item = prepare(strategy, batch)["video"]
    x0, ref = (
        MODEL.patchify_video(batch["video_latents"]["latents"]),
        MODEL.patchify_video(batch["reference_latents"]["latents"]),
    )
    n = x0.shape[1]
    assert item.reference_tokens == n and item.input.latent.shape == (2, 2 * n, CHANNELS)
    assert torch.equal(item.input.latent[:, :n], ref)
    torch.testing.assert_close(item.input.latent[:, n:], noisy(x0, item.target))
    assert torch.equal(item.input.timesteps[:, :n], torch.zeros(2, n))
    assert torch.equal(item.input.timesteps[:, n:], torch.full((2, n), SIGMA))
    assert item.target.shape == (2, n, CHANNELS) and item.loss_mask.shape == (2, n) and item.loss_mask.all()
    positions = item.input.positions
    assert positions.shape == (2, 3, 2 * n, 2)
    assert torch.equal(positions[:, :, :n], positions[:, :, n:])  # unscaled reference: same grid, starting at 0
    # the keyframe marker (LTX-2.5's embedding): the target's first latent frame only, never the reference
    marker = torch.zeros(2, 2 * n)
    marker[:, n : n + 4] = 1.0  # one latent frame = 2 x 2 tokens
    assert torch.equal(item.input.keyframes, marker)
    assert strategy.metadata() == {
        "reference_downscale_factor": "1",
        "reference_spatial_scale_factor": "1",
        "reference_temporal_scale_factor": "1",
    }


def test_in_clip_conditions_apply_to_the_target_before_the_reference(tmp_path):
    # listed after the reference on purpose: the order in the config does not matter
    config = flexible(generated("latents", REFERENCE, {"type": "first_frame"}))
    strategy = make(config, data_root(tmp_path, (3, 2, 2), (3, 2, 2)))
    batch = {"video_latents": video(), "reference_latents": video(sign=-1)}
    item = prepare(strategy, batch)["video"]
    x0 = MODEL.patchify_video(batch["video_latents"]["latents"])
    n, per_frame = 12, 4
    target_part = item.input.latent[:, n:]
    assert torch.equal(target_part[:, :per_frame], x0[:, :per_frame])  # first frame clean
    assert torch.equal(item.input.timesteps[0, : n + per_frame], torch.zeros(n + per_frame))
    assert torch.equal(item.input.timesteps[0, n + per_frame :], torch.full((n - per_frame,), SIGMA))
    assert item.loss_mask[0].tolist() == [False] * per_frame + [True] * (n - per_frame)


@pytest.mark.parametrize(
    ("condition", "clean"),
    [
        ({"type": "first_frame"}, [0, 1, 2, 3]),
        ({"type": "prefix", "temporal_boundary": 2}, list(range(8))),
        ({"type": "suffix", "temporal_boundary": 1}, [8, 9, 10, 11]),
        ({"type": "spatial_crop", "spatial_region": [0, 0, 32, 64]}, [0, 1, 4, 5, 8, 9]),  # latent row 0, all frames
        ({"type": "mask", "mask_dir": "video_masks"}, [3, 7, 11]),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_video_in_clip_conditions(condition, clean):
    strategy = FlexibleStrategy(flexible(generated("latents", condition)))
    mask = torch.zeros(1, 3, 2, 2)
    mask[:, :, 1, 1] = 1.0
    batch = {"video_latents": video(), "video_masks": {"mask": mask}}
    item = prepare(strategy, batch)["video"]
    x0 = MODEL.patchify_video(batch["video_latents"]["latents"])
    expected_clean = torch.zeros(1, 12, dtype=torch.bool)
    expected_clean[0, clean] = True
    assert item.reference_tokens == 0
    assert torch.equal(item.loss_mask, ~expected_clean)
    assert torch.equal(item.input.timesteps, (~expected_clean).float() * SIGMA)
    assert torch.equal(item.input.latent[expected_clean], x0[expected_clean])
    torch.testing.assert_close(item.input.latent[~expected_clean], noisy(x0, item.target)[~expected_clean])


@pytest.mark.parametrize(
    ("condition", "clean"),
    [
        ({"type": "prefix", "temporal_boundary": 2}, [0, 1]),
        ({"type": "suffix", "temporal_boundary": 3}, [4, 5, 6]),
        ({"type": "mask", "mask_dir": "audio_masks"}, [2, 3]),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_audio_in_clip_conditions(condition, clean):
    strategy = FlexibleStrategy(flexible(audio_block=generated("audio_latents", condition)))
    batch = {"audio_latents": audio(), "audio_masks": {"mask": torch.tensor([[0, 0, 1, 1, 0, 0, 0.0]])}}
    prepared = prepare(strategy, batch)
    assert set(prepared) == {"audio"}  # audio-only generation: no video stream at all
    item = prepared["audio"]
    expected_clean = torch.zeros(1, 7, dtype=torch.bool)
    expected_clean[0, clean] = True
    assert torch.equal(item.loss_mask, ~expected_clean)
    assert torch.equal(item.input.timesteps, (~expected_clean).float() * SIGMA)
    assert torch.equal(item.input.positions, MODEL.audio_positions(1, 7))


def test_spatially_downscaled_reference_covers_the_target_tokens_it_was_pooled_from(tmp_path):
    strategy = make(flexible(generated("latents", REFERENCE)), data_root(tmp_path, (2, 4, 6), (2, 2, 3)))
    assert strategy.reference_scale == ReferenceScale(spatial=2, temporal=1)
    assert strategy.metadata()["reference_downscale_factor"] == "2"
    assert strategy.metadata()["reference_spatial_scale_factor"] == "2"
    batch = {
        "video_latents": video(frames=2, height=4, width=6),
        "reference_latents": video(frames=2, height=2, width=3),
    }
    item = prepare(strategy, batch)["video"]
    n_ref = item.reference_tokens
    assert n_ref == 12
    ref = item.input.positions[0, :, :n_ref].reshape(3, 2, 2, 3, 2)  # [axis, F', H', W', start/end]
    target = item.input.positions[0, :, n_ref:].reshape(3, 2, 4, 6, 2)
    for y in range(2):
        for x in range(3):
            block = target[:, :, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2]
            torch.testing.assert_close(ref[1:, :, y, x, 0], block[1:, :, 0, 0, 0])  # starts at the block's start
            torch.testing.assert_close(ref[1:, :, y, x, 1], block[1:, :, -1, -1, 1])  # ends at the block's end
            torch.testing.assert_close(ref[0, :, y, x], block[0, :, 0, 0])  # same time bounds
    unscaled = MODEL.video_positions(1, 2, 2, 3, FPS)
    torch.testing.assert_close(item.input.positions[:, 1:, :n_ref], unscaled[:, 1:] * 2)


@pytest.mark.parametrize(("factor", "ref_frames"), [(2, 2), (2, 3), (3, 3), (4, 2)])
def test_temporally_subsampled_reference_latent_j_spans_target_latents_s_j_minus_1_plus_1_to_s_j(
    tmp_path, factor, ref_frames
):
    target_frames = factor * (ref_frames - 1) + 1
    root = data_root(tmp_path, (target_frames, 1, 1), (ref_frames, 1, 1), ref_fps=FPS / factor)
    strategy = make(flexible(generated("latents", REFERENCE)), root)
    assert strategy.reference_scale == ReferenceScale(spatial=1, temporal=factor)
    assert strategy.metadata()["reference_temporal_scale_factor"] == str(factor)
    batch = {
        "video_latents": video(frames=target_frames, height=1, width=1),
        "reference_latents": video(frames=ref_frames, height=1, width=1, fps=FPS / factor),
    }
    item = prepare(strategy, batch)["video"]
    times = item.input.positions[0, 0]  # [N, 2] seconds, reference tokens first
    ref, target = times[:ref_frames], times[ref_frames:]
    torch.testing.assert_close(ref[0], target[0])  # latent frame 0 is pixel frame 0 in both
    for j in range(1, ref_frames):
        first, last = factor * (j - 1) + 1, factor * j
        torch.testing.assert_close(ref[j], torch.stack([target[first, 0], target[last, 1]]))


def test_reference_without_a_stored_fps_uses_target_fps_over_s(tmp_path):
    root = data_root(tmp_path, (3, 1, 1), (2, 1, 1), ref_fps=FPS / 2)
    strategy = make(flexible(generated("latents", REFERENCE)), root)
    reference = video(frames=2, height=1, width=1)
    del reference["fps"]  # legacy caches carry no fps
    batch = {"video_latents": video(frames=3, height=1, width=1), "reference_latents": reference}
    positions = prepare(strategy, batch)["video"].input.positions
    expected = reference_video_positions(MODEL, 1, LatentGrid(2, 1, 1), FPS / 2, ReferenceScale(1, 2), FPS)
    torch.testing.assert_close(positions[:, :, :2], expected)


def test_scale_is_read_from_the_data_root_not_the_working_directory(tmp_path, monkeypatch):
    root = data_root(tmp_path / "data", (2, 4, 4), (2, 2, 2))
    decoy = data_root(tmp_path / "cwd", (2, 4, 4), (2, 4, 4)) / ".precomputed"
    monkeypatch.chdir(decoy)  # a CWD-relative lookup would find the unscaled decoy pair here
    strategy = make(flexible(generated("latents", REFERENCE)), root)
    assert strategy.reference_scale == ReferenceScale(spatial=2, temporal=1)


@pytest.mark.parametrize(
    ("target", "reference", "words"),
    [
        ((2, 3, 3), (2, 2, 2), "spatial scale must be one whole number"),
        ((2, 4, 2), (2, 2, 2), "got 2 (height) and 1 (width)"),
        ((4, 2, 2), (3, 2, 2), "temporal scale (F'_t - 1) / (F'_r - 1) = 1.5"),
        ((2, 2, 2), (3, 2, 2), "temporal scale (F'_t - 1) / (F'_r - 1) = 0.5"),
    ],
)
def test_reference_scale_must_be_a_whole_number_and_the_error_names_the_files(tmp_path, target, reference, words):
    root = data_root(tmp_path, target, reference)
    with pytest.raises(ValueError, match=r"training_strategy\.video\.conditions") as info:
        make(flexible(generated("latents", REFERENCE)), root)
    message = str(info.value)
    assert words in message
    assert str(root / ".precomputed" / "latents" / "clip.safetensors") in message
    assert str(root / ".precomputed" / "reference_latents" / "clip.safetensors") in message


def test_reference_fps_must_match_the_temporal_factor(tmp_path):
    root = data_root(tmp_path, (3, 1, 1), (2, 1, 1), ref_fps=FPS)  # subsampled by 2 but stored at the source fps
    with pytest.raises(ValueError, match="reference fps 24 is not target fps 24 / 2"):
        make(flexible(generated("latents", REFERENCE)), root)


def test_a_batch_with_another_reference_scale_is_named(tmp_path):
    strategy = make(flexible(generated("latents", REFERENCE)), data_root(tmp_path, (2, 4, 4), (2, 2, 2)))
    batch = {"id": ["a", "b"], "video_latents": video(2, 2, 4, 4), "reference_latents": video(2, 2, 4, 4)}
    with pytest.raises(ValueError, match=r"reference_latents \(samples \['a', 'b'\]\).*spatial 2, temporal 1"):
        prepare(strategy, batch)


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_reference_probability_zero_never_one_always(tmp_path, probability):
    reference = {**REFERENCE, "probability": probability}
    strategy = make(flexible(generated("latents", reference)), data_root(tmp_path, (3, 2, 2), (3, 2, 2)))
    batch = {"video_latents": video(batch=4), "reference_latents": video(batch=4, sign=-1)}
    for seed in range(10):
        item = prepare(strategy, batch, seed)["video"]
        assert item.reference_tokens == (12 if probability else 0)
        assert item.input.latent.shape[1] == item.input.positions.shape[2] == item.input.timesteps.shape[1]
        assert item.input.latent.shape[1] == 12 + item.reference_tokens


def test_reference_is_one_draw_per_batch_in_clip_conditions_one_per_sample(tmp_path):
    config = flexible(
        generated("latents", {"type": "first_frame", "probability": 0.5}, {**REFERENCE, "probability": 0.5})
    )
    strategy = make(config, data_root(tmp_path, (3, 2, 2), (3, 2, 2)))
    batch = {"video_latents": video(batch=32), "reference_latents": video(batch=32, sign=-1)}
    with_reference, first_frame_counts = set(), set()
    for seed in range(12):
        item = prepare(strategy, batch, seed)["video"]
        with_reference.add(item.reference_tokens)  # the whole batch has the reference, or none of it
        first_frame_counts.add(int((~item.loss_mask[:, 0]).sum()))
    assert with_reference == {0, 12}
    assert all(0 < count < 32 for count in first_frame_counts)  # within a batch some samples are conditioned


@pytest.mark.parametrize("frozen", ["audio", "video"])
def test_frozen_modality_is_clean_with_sigma_zero_and_no_loss(frozen):
    blocks = {"video": generated("latents"), "audio": generated("audio_latents")}
    blocks[frozen] = {"is_generated": False, "latents_dir": blocks[frozen]["latents_dir"]}
    strategy = FlexibleStrategy(flexible(blocks["video"], blocks["audio"]))
    batch = {"video_latents": video(), "audio_latents": audio()}
    prepared = prepare(strategy, batch)
    item = prepared[frozen]
    clean = {"video": MODEL.patchify_video, "audio": MODEL.patchify_audio}[frozen](
        batch[f"{frozen}_latents"]["latents"]
    )
    assert torch.equal(item.input.latent, clean)
    assert not item.input.timesteps.any() and not item.input.sigma.any()
    assert item.target is None and item.loss_mask is None
    other = "video" if frozen == "audio" else "audio"
    assert torch.equal(prepared[other].input.sigma, torch.full((1,), SIGMA))
    predictions = {name: torch.randn(p.input.latent.shape) for name, p in prepared.items()}
    total, parts = strategy.loss(predictions, prepared)
    assert set(parts) == {other}
    torch.testing.assert_close(total, parts[other])


def test_predictions_on_conditioning_and_reference_tokens_do_not_move_the_loss(tmp_path):
    config = flexible(
        generated("latents", {"type": "first_frame"}, REFERENCE),
        generated(
            "audio_latents", {"type": "prefix", "temporal_boundary": 3}, {**REFERENCE, "latents_dir": "ref_audio"}
        ),
    )
    strategy = make(config, data_root(tmp_path, (3, 2, 2), (3, 2, 2)))
    batch = {
        "video_latents": video(batch=2),
        "reference_latents": video(batch=2, sign=-1),
        "audio_latents": audio(batch=2),
        "ref_audio": audio(batch=2, steps=5, sign=-1),
    }
    prepared = prepare(strategy, batch)
    assert prepared["video"].reference_tokens == 12 and prepared["audio"].reference_tokens == 5

    def predictions(garbage: float) -> dict[str, torch.Tensor]:
        out = {}
        for name, item in prepared.items():
            target = torch.where(item.loss_mask.unsqueeze(-1), item.target, torch.full_like(item.target, garbage))
            junk = torch.full((2, item.reference_tokens, target.shape[-1]), garbage)
            out[name] = torch.cat([junk, target], dim=1)
        return out

    for garbage in (0.0, 1e6, -3e4):
        total, parts = strategy.loss(predictions(garbage), prepared)
        assert torch.equal(total, torch.zeros(2)) and set(parts) == {"video", "audio"}
    moved = predictions(1e6)
    moved["video"][:, -1] += 1.0  # the last video token is a loss token
    assert (strategy.loss(moved, prepared)[0] > 0).all()


def test_audio_reference_keeps_its_own_timeline_from_zero():
    strategy = FlexibleStrategy(flexible(audio_block=generated("audio_latents", {**REFERENCE, "latents_dir": "ref"})))
    assert strategy.metadata() == {}  # scale factors describe video references only
    batch = {"audio_latents": audio(steps=7), "ref": audio(steps=5, sign=-1)}
    item = prepare(strategy, batch)["audio"]
    assert item.reference_tokens == 5
    assert torch.equal(item.input.latent[:, :5], MODEL.patchify_audio(batch["ref"]["latents"]))
    assert torch.equal(item.input.positions[:, :, :5], MODEL.audio_positions(1, 5))
    assert torch.equal(item.input.positions[:, :, 5:], MODEL.audio_positions(1, 7))
    assert not item.input.timesteps[:, :5].any() and (item.input.timesteps[:, 5:] == SIGMA).all()


def test_legacy_strategies_run_through_as_flexible(tmp_path):
    root = data_root(tmp_path, (3, 2, 2), (3, 2, 2))
    legacy = make(VideoToVideoConfig(first_frame_conditioning_p=1.0).as_flexible(), root)
    assert legacy.sources() == {
        "conditions": "conditions",
        "latents": "video_latents",
        "reference_latents": "reference_latents",
    }
    item = prepare(legacy, {"video_latents": video(), "reference_latents": video(sign=-1)})["video"]
    assert item.reference_tokens == 12 and item.loss_mask[0].tolist() == [False] * 4 + [True] * 8
    t2v = FlexibleStrategy(TextToVideoConfig(first_frame_conditioning_p=0.0, with_audio=True).as_flexible())
    prepared = prepare(t2v, {"video_latents": video(), "audio_latents": audio()})
    assert set(prepared) == {"video", "audio"} and prepared["video"].loss_mask.all()
    assert t2v.metadata() == {}


def test_construction_errors_name_the_key(tmp_path):
    two_refs = flexible(generated("latents", REFERENCE, {**REFERENCE, "latents_dir": "other"}))
    with pytest.raises(ValueError, match=r"training_strategy\.video\.conditions\[1\]: a second reference"):
        FlexibleStrategy(two_refs)
    with pytest.raises(ValueError, match=r"training_strategy\.video\.conditions\[0\]\.latents_dir: a video reference"):
        FlexibleStrategy(flexible(generated("latents", REFERENCE)))
    bad_crop = flexible(generated("latents", {"type": "spatial_crop", "spatial_region": [64, 0, 32, 64]}))
    with pytest.raises(ValueError, match=r"training_strategy\.video\.conditions\[0\]\.spatial_region"):
        FlexibleStrategy(bad_crop)
    (tmp_path / "latents").mkdir()
    with pytest.raises(FileNotFoundError, match=r"conditions\[0\]\.latents_dir: folder 'reference_latents' not found"):
        make(flexible(generated("latents", REFERENCE)), tmp_path)


def test_mask_of_the_wrong_shape_is_named():
    strategy = FlexibleStrategy(flexible(generated("latents", {"type": "mask", "mask_dir": "video_masks"})))
    batch = {"id": ["x"], "video_latents": video(), "video_masks": {"mask": torch.ones(1, 3, 4, 4)}}
    with pytest.raises(ValueError, match=r"mask_dir 'video_masks': masks of shape \[3, 4, 4\].*\['x'\]"):
        prepare(strategy, batch)
