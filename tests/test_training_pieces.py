"""Pure training pieces: sigma samplers, schedules, optimizers, dataset + bucketed sampler, flow-matching math."""

import pytest
import torch

from ltx_trainer.data.cache import read_sample_file, write_sample_file
from ltx_trainer.data.dataset import BucketBatchSampler, PrecomputedDataset, collate
from ltx_trainer.models.latents import sigma_schedule, token_shift
from ltx_trainer.training.flow_matching import masked_mse, noisy_latents, velocity_target
from ltx_trainer.training.optim import make_optimizer, make_scheduler
from ltx_trainer.training.timesteps import ShiftedLogitNormal, Uniform, make_sigma_sampler

SCHEDULERS = ["constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "step"]


@pytest.mark.parametrize("tokens", [1, 1024, 4096, 100_000, 10**6, 10**9])
def test_shifted_logit_normal_is_finite_and_in_range_at_any_length(tokens):
    sigma = ShiftedLogitNormal()(20_000, tokens, torch.Generator().manual_seed(0))
    assert torch.isfinite(sigma).all()
    assert sigma.min() >= 0 and sigma.max() <= 1


def test_shifted_logit_normal_distribution():
    g = torch.Generator().manual_seed(0)
    plain = ShiftedLogitNormal(uniform_prob=0.0)(200_000, 4096, g)
    # stretched: the 0.5th..99.9th percentiles of the logit-normal span [0, 1]; the reflected eps floor is ~1e-3
    assert plain.min() < 0.01 and plain.max() > 0.99
    assert abs(plain.quantile(0.999).item() - 1.0) < 0.01
    # more tokens -> larger shift -> higher median sigma
    assert ShiftedLogitNormal(uniform_prob=0.0)(50_000, 8192, g).median() > plain.median()
    # the uniform share: with uniform_prob=1 every draw is U(eps, 1)
    uniform = ShiftedLogitNormal(uniform_prob=1.0)(200_000, 4096, g)
    assert abs(uniform.mean().item() - 0.5) < 0.01
    mixed = ShiftedLogitNormal(uniform_prob=0.1)(200_000, 4096, g)
    expected = 0.9 * plain.mean() + 0.1 * 0.5
    assert abs(mixed.mean().item() - expected.item()) < 0.01


def test_token_shift_anchors_and_schedule():
    assert token_shift(1024) == pytest.approx(0.95)
    assert token_shift(4096) == pytest.approx(2.05)
    torch.testing.assert_close(
        sigma_schedule(8, 4096),
        torch.tensor([1.0, 0.9657, 0.9219, 0.8639, 0.7834, 0.6646, 0.4710, 0.1, 0.0]),
        atol=1e-3,
        rtol=0,
    )


def test_uniform_sampler_and_bad_params():
    s = Uniform(0.2, 0.4)(1000, 10, torch.Generator().manual_seed(0))
    assert s.min() >= 0.2 and s.max() <= 0.4
    with pytest.raises(ValueError, match="timestep_sampling_params"):
        make_sigma_sampler("uniform", {"bogus": 1})
    with pytest.raises(ValueError, match="timestep_sampling_mode"):
        make_sigma_sampler("cosine", {})


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("warmup", [0, 3])
def test_every_scheduler_builds_steps_and_warms_up(scheduler, warmup):
    param = torch.nn.Parameter(torch.zeros(4))
    opt = make_optimizer([param], "adamw", 1e-3)
    sched = make_scheduler(opt, scheduler, steps=20, warmup_steps=warmup)
    lrs = []
    for _ in range(20):
        param.grad = torch.ones(4)
        opt.step()
        opt.zero_grad()
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert all(0 <= lr <= 1e-3 + 1e-12 for lr in lrs)
    if warmup:
        assert lrs[0] == pytest.approx(1e-3 / warmup) and lrs[warmup - 1] == pytest.approx(1e-3)
    else:
        assert lrs[0] == pytest.approx(1e-3)
    if scheduler == "cosine_with_restarts":  # decays, then restarts at the peak
        assert min(lrs[warmup:]) < 1e-3 and max(lrs[warmup + 1 :]) == pytest.approx(1e-3)
    elif scheduler != "constant":
        assert lrs[-1] < 1e-3


def test_adamw8bit_is_refused_clearly_on_cpu():
    with pytest.raises(RuntimeError, match="adamw8bit"):
        make_optimizer([torch.nn.Parameter(torch.zeros(2))], "adamw8bit", 1e-3)


def test_flow_matching_math():
    x0, noise = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    sigma = torch.tensor([0.0, 1.0])
    xt = noisy_latents(x0, noise, sigma)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[1], noise[1])
    torch.testing.assert_close(velocity_target(x0, noise), noise - x0)
    pred = torch.zeros(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, :2] = False
    loss = masked_mse(pred, torch.ones(2, 5, 3), mask)
    torch.testing.assert_close(loss, torch.ones(2))
    # predictions on masked tokens do not move the loss
    pred[0, :2] = 1e6
    torch.testing.assert_close(masked_mse(pred, torch.ones(2, 5, 3), mask), torch.ones(2))


def _write_video_sample(root, rel, frames, height, width, fmt):
    write_sample_file(
        root / "latents" / f"{rel}.{fmt}",
        {
            "latents": torch.randn(128, frames, height, width),
            "num_frames": frames,
            "height": height,
            "width": width,
            "fps": 24.0,
        },
    )
    write_sample_file(
        root / "conditions" / f"{rel}.{fmt}",
        {"video_prompt_embeds": torch.randn(16, 8), "prompt_attention_mask": torch.ones(16, dtype=torch.long)},
    )


def test_dataset_reads_official_and_ours_and_skips_incomplete(tmp_path):
    root = tmp_path / ".precomputed"
    _write_video_sample(root, "clips/a", 2, 2, 3, "pt")
    _write_video_sample(root, "clips/b", 2, 2, 3, "safetensors")
    _write_video_sample(root, "c", 3, 1, 2, "pt")
    (root / "conditions" / "c.pt").unlink()  # incomplete -> skipped with a warning
    # legacy patchified latents [seq, C]
    legacy = torch.randn(128, 2, 2, 2)
    write_sample_file(
        root / "latents" / "d.pt", {"latents": legacy.flatten(1).T, "num_frames": 2, "height": 2, "width": 2}
    )
    write_sample_file(
        root / "conditions" / "d.pt", {"prompt_embeds": torch.randn(16, 8), "prompt_attention_mask": torch.ones(16)}
    )
    ds = PrecomputedDataset(tmp_path, {"latents": "video_latents", "conditions": "conditions"})
    assert ds.ids == ["clips/a", "clips/b", "d"]
    d = ds[2]
    torch.testing.assert_close(d["video_latents"]["latents"], legacy)
    torch.testing.assert_close(d["conditions"]["audio_prompt_embeds"], d["conditions"]["video_prompt_embeds"])
    assert read_sample_file(root / "latents" / "clips" / "b.safetensors")["fps"] == 24.0


def test_missing_source_folder_is_named(tmp_path):
    _write_video_sample(tmp_path, "a", 2, 2, 2, "pt")
    with pytest.raises(FileNotFoundError, match="audio_latents"):
        PrecomputedDataset(tmp_path, {"latents": "video_latents", "conditions": "conditions", "audio_latents": "a"})


def test_bucketed_sampler_batches_equal_shapes_and_resumes(tmp_path):
    for i in range(5):
        _write_video_sample(tmp_path, f"big{i}", 2, 2, 3, "pt")
    for i in range(3):
        _write_video_sample(tmp_path, f"small{i}", 3, 1, 2, "pt")
    ds = PrecomputedDataset(tmp_path, {"latents": "video_latents", "conditions": "conditions"})
    sampler = BucketBatchSampler([ds.shape_key(i) for i in range(len(ds))], batch_size=2, seed=3)
    stream = iter(sampler)
    first = [next(stream) for _ in range(10)]
    for batch in first:
        batch_data = collate([ds[i] for i in batch])  # stacking fails if shapes differ
        assert batch_data["video_latents"]["latents"].shape[0] == len(batch)
    assert {i for b in first[: len(sampler)] for i in b} == set(range(len(ds)))  # an epoch covers every sample
    resumed = BucketBatchSampler([ds.shape_key(i) for i in range(len(ds))], batch_size=2, seed=3)
    resumed.skip(7)
    again = iter(resumed)
    assert [next(again) for _ in range(3)] == first[7:10]
