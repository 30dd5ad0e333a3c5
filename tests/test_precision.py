"""kc.core.precision: bf16 autocast for g's training steps, detected rather than assumed."""

import warnings

import pytest
import torch

import kc
from kc.core import precision as pr
from kc.studies.common import GFit


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert pr.cpu_bf16_flags(str(info)) == ("avx512_bf16",)
    info.write_text("processor : 0\nflags : fpu sse2 avx2\n")
    assert pr.cpu_bf16_flags.__wrapped__(str(info)) == ()
    assert pr.cpu_bf16_flags(str(tmp_path / "absent")) == ()


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"):
        pr.check_precision("fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        kc.fit_consistency(torch.randn(40, 3), torch.randn(40, 3), precision="half", progress=False)
    with pytest.raises(ValueError, match="G_PRECISION must be one of"):
        GFit(order=2, lam=0.1, lam_alexnet=8.0, fit_limit=None, test_limit=None, g_steps=10,
             g_lr=0.01, g_batch_size=8, precision="bf15")  # fmt: skip


def test_bf16_without_instructions_warns(monkeypatch):
    monkeypatch.setattr(pr, "cpu_bf16_flags", lambda cpuinfo="": ())
    with pytest.warns(RuntimeWarning, match="no bf16 instructions"):
        pr.check_precision("bf16", "cpu")
    monkeypatch.setattr(pr, "cpu_bf16_flags", lambda cpuinfo="": ("avx512_bf16",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pr.check_precision("bf16", "cpu") == "bf16"
        assert pr.check_precision("fp32", "cpu") == "fp32"


def test_autocast_computes_in_bf16_only_when_asked():
    a = torch.randn(4, 4)
    with pr.autocast("bf16", "cpu"):
        assert (a @ a).dtype == torch.bfloat16
    with pr.autocast("fp32", "cpu"):
        assert (a @ a).dtype == torch.float32


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_bf16_fit_finds_a_planted_permutation_and_keeps_fp32_weights():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(320, 8, 6, 6, generator=gen)
    t = 2.0 * x[:, torch.randperm(8, generator=gen)] - 1.0
    fits = {p: kc.consistency(x[:256], t[:256], test=(x[256:], t[256:]), precision=p, seed=0,
                              progress=False) for p in ("fp32", "bf16")}  # fmt: skip
    for res in fits.values():
        assert res.instability < 0.02
        assert all(q.dtype == torch.float32 for q in res.model.parameters())
    # bf16 rounds differently: the two fits are not the same fit
    w32, w16 = (fits[p].model.weights[0].weight for p in ("fp32", "bf16"))
    assert not torch.equal(w32, w16)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_bf16_fit_is_deterministic():
    x = torch.randn(128, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    t = x.flip(1)
    a, b = (kc.fit_consistency(x, t, precision="bf16", max_steps=60, progress=False)
            for _ in range(2))  # fmt: skip
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
