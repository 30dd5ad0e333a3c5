"""The grounding notebook (ReSi-style tests) runs under smoke."""

import numpy as np
import pytest
from conftest import notebook_params
from nb_beyond import check_figure, check_verdicts, finite_csv


@pytest.mark.notebooks
def test_grounding_notebook(smoke_tree):
    out = smoke_tree.output("grounding")
    pairs = finite_csv(out / "grounding_pairs.csv", ["linear_cka", "kc_consistency", "share_x0"])
    # AlexNet: 5 conv layers (10 pairs) per seed; 4 networks (6 pairs); every pair of the
    # NOISE_LEVELS x NOISE_REPEATS noisy copies
    params = notebook_params("grounding")
    copies = len(params["NOISE_LEVELS"]) * params["NOISE_REPEATS"]
    assert pairs.groupby("test").size().to_dict() == {
        "layer": 10 * len(params["SEEDS"]), "functional": 6,
        "augmentation": copies * (copies - 1) // 2,
    }  # fmt: skip
    table = finite_csv(out / "grounding.csv", ["layer_violation", "aug_violation", "aug_auprc"])
    assert len(table) == 8 and "kc_consistency" in set(table["measure"])
    assert table["layer_violation"].between(0, 1).all() and table["aug_auprc"].between(0, 1).all()
    winners = finite_csv(out / "grounding_winners.csv", ["value"])
    assert {"layer_violation", "aug_auprc"} <= set(winners["score"])
    assert np.isfinite(finite_csv(out / "grounding_networks.csv", ["accuracy"])["accuracy"]).all()
    check_figure(out, "grounding")
    check_verdicts(out, "grounding", {"grounding.layer", "grounding.functional",
                                      "grounding.augmentation"})  # fmt: skip
