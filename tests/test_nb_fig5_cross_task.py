"""The Fig. 5 notebook (fine-grained vs binary task, Sec. 4.6) under the smoke profile."""

import pytest
from figure_notebooks import computed_claims, figures_exist, finite_csv


@pytest.mark.notebooks
def test_fig5_cross_task_notebook(smoke_tree):
    out = smoke_tree.output("fig5_cross_task")
    runs = finite_csv(out / "fig5_cross_task.csv")
    assert len(runs) == 2 * 2 and runs["instability"].between(0, 2).all()  # smoke: SEEDS [0, 1]
    summary = finite_csv(out / "fig5_cross_task_summary.csv").set_index("direction")
    assert summary["n_seeds"].eq(2).all()
    nets = finite_csv(out / "fig5_cross_task_networks.csv")
    assert sorted(set(nets["task"])) == ["all", "binary"] and nets["accuracy"].between(0, 100).all()
    figures_exist(
        out, "fig5_cross_task_a_to_b", "fig5_cross_task_b_to_a", "fig5_cross_task_instability"
    )
    (claim,) = computed_claims(out, "fig5_cross_task", ["fig5_cross_task.a_reconstructs_b"])
    diff = summary.loc["B -> A minus A -> B", "mean"]
    assert claim["numbers"]["difference"] == pytest.approx(diff)
    assert (claim["status"] == "reproduced") == bool(diff > 0)
