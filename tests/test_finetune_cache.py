"""Fine-tuned rows are cache entries: a rerun or a resumed run trains nothing it has trained."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from kc.engine import finetune as ft


def _head(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 3))


def _data(seed: int = 2) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(40, 2, 2, 2, generator=gen), torch.randn(16, 2, 2, 2, generator=gen),
            torch.randint(0, 3, (40,), generator=gen), torch.randint(0, 3, (16,), generator=gen))  # fmt: skip


BUDGET = ft.Budget(epochs=2, lr=1e-2, batch_size=16, seed=3)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Each test starts from an empty cache of its own."""
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))


def _count_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap train_head so that each call is counted."""
    calls: list[int] = []
    real = ft.train_head

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "train_head", counted)
    return calls


def test_a_rerun_loads_every_row_and_its_trained_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    train_x, test_x, train_y, test_y = _data()
    calls = _count_training(monkeypatch)
    first_heads = {"A": _head(0), "B": _head(1)}
    first = ft.compare_rows({k: (h, train_x, test_x) for k, h in first_heads.items()},
                            train_y, test_y, BUDGET)  # fmt: skip
    assert len(calls) == 2
    again_heads = {"A": _head(0), "B": _head(1)}
    again = ft.compare_rows({k: (h, train_x, test_x) for k, h in again_heads.items()},
                            train_y, test_y, BUDGET)  # fmt: skip
    assert len(calls) == 2  # nothing trained again
    pd.testing.assert_frame_equal(first, again)  # ft_seconds too: the recorded ones
    for name, head in again_heads.items():  # given the trained weights, not left at init
        for p, q in zip(head.parameters(), first_heads[name].parameters(), strict=True):
            assert torch.equal(p, q)
        assert not torch.equal(head[1].weight, _head(0 if name == "A" else 1)[1].weight)


@pytest.mark.parametrize("change", ["budget", "features", "labels", "head"])
def test_anything_that_changes_the_result_trains_again(
    change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_x, test_x, train_y, test_y = _data()
    calls = _count_training(monkeypatch)
    ft.compare_rows({"A": (_head(0), train_x, test_x)}, train_y, test_y, BUDGET)
    head, budget = _head(0), BUDGET
    if change == "budget":
        budget = ft.Budget(epochs=3, lr=1e-2, batch_size=16, seed=3)
    elif change == "features":
        train_x = train_x.clone()
        train_x[0, 0, 0, 0] += 1e-3
    elif change == "labels":
        test_y = (test_y + 1) % 3
    else:
        head = _head(5)
    ft.compare_rows({"A": (head, train_x, test_x)}, train_y, test_y, budget)
    assert len(calls) == 2


def test_an_interrupted_run_resumes_at_the_row_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    train_x, test_x, train_y, test_y = _data()
    real = ft.train_head
    calls: list[int] = []

    def stops_at_the_second(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "train_head", stops_at_the_second)
    rows = lambda: {"A": (_head(0), train_x, test_x), "B": (_head(1), train_x, test_x)}  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        ft.compare_rows(rows(), train_y, test_y, BUDGET)
    frame = ft.compare_rows(rows(), train_y, test_y, BUDGET)
    assert len(calls) == 3  # A once; B interrupted, then trained on the rerun
    assert frame["row"].tolist() == ["A", "B"]


def test_tensor_digest_sees_dtype_shape_and_values() -> None:
    a = torch.arange(6.0).reshape(2, 3)
    assert ft.tensor_digest(a) == ft.tensor_digest(a.clone())
    assert len({ft.tensor_digest(a), ft.tensor_digest(a.double()), ft.tensor_digest(a.reshape(3, 2)),
                ft.tensor_digest(a + 1), ft.tensor_digest(a, a)}) == 5  # fmt: skip
    assert ft.tensor_digest(torch.zeros(0)) != ft.tensor_digest(torch.zeros(0, 2))


def test_sec41_arms_are_cache_entries_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from kc.studies.diagnosis import arms

    train_x, test_x, train_y, test_y = _data()
    calls = _count_training(monkeypatch)
    inputs = {arm: train_x + i for i, arm in enumerate(arms.ARMS)}
    tests = {arm: test_x + i for i, arm in enumerate(arms.ARMS)}
    first = arms.train_arms(lambda: _head(0), inputs, train_y, tests, test_y, budget=BUDGET)
    assert len(calls) == len(arms.ARMS)  # one head per arm: the inputs differ
    again = arms.train_arms(lambda: _head(0), inputs, train_y, tests, test_y, budget=BUDGET)
    assert len(calls) == len(arms.ARMS)  # the rerun trains none
    pd.testing.assert_frame_equal(first, again)
    untrained = arms.train_arms(lambda: _head(0), inputs, train_y, tests, test_y,
                                budget=ft.Budget(epochs=0, lr=1e-2))  # fmt: skip
    assert len(calls) == len(arms.ARMS) and (untrained["seconds"] == 0).all()  # only evaluated


def test_heads_with_batch_norm_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchNorm keeps a 0-dim step counter: the head's digest must take scalars too."""
    assert ft.tensor_digest(torch.tensor(3)) != ft.tensor_digest(torch.tensor([3]))
    train_x, test_x, train_y, test_y = _data()
    calls = _count_training(monkeypatch)

    def bn_head() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))

    first = ft.compare_rows({"A": (bn_head(), train_x, test_x)}, train_y, test_y, BUDGET)
    again = ft.compare_rows({"A": (bn_head(), train_x, test_x)}, train_y, test_y, BUDGET)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
