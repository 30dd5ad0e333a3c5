"""The manifest of notebooks and where they live.

:data:`MANIFEST` is the single list of notebooks (the book's table of contents is generated
from it): each :class:`Notebook` names the paper item it reproduces and the files it writes under
``<output_root>/<name>/``. :func:`resolve_notebook` turns a manifest name or a path into the
notebook's file; :func:`working_dir` is the folder it runs in, so that relative paths such as
``outputs`` or ``data/cache`` mean the same thing as in a shell at the repository root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST",
    "Notebook",
    "manifest_entry",
    "notebooks_dir",
    "project_root",
    "resolve_notebook",
    "working_dir",
]


@dataclass(frozen=True)
class Notebook:
    """One entry of the manifest.

    Attributes:
        name: file stem in ``notebooks/`` and folder name under the output root.
        paper_item: what of the paper it reproduces (``"Table 1"``).
        title: one line on what it shows.
        outputs: files it writes in ``<output_root>/<name>/`` (besides ``run.json``).
        part: ``"tutorial"``, ``"paper"`` or ``"beyond"`` (the book part it belongs to).
        planned: not written yet; ``run_all`` skips it while its file is missing.
        plan: ``"module:function"`` that returns, from the notebook's parameter values, the
            cache work it will do (:class:`kc.engine.tasks.Task`), so that ``kc run -j N``
            computes it on N workers before the notebook runs; ``""``: none declared.
    """

    name: str
    paper_item: str
    title: str
    outputs: tuple[str, ...] = ()
    part: str = "paper"
    planned: bool = False
    plan: str = ""


MANIFEST: tuple[Notebook, ...] = (
    Notebook(
        "00_toy_consistency",
        "Eq. 1-4, footnote 1",
        "Course lab: knowledge consistency on planted features (five exercises with checks)",
        ("toy_cases.csv", "toy_cases.png", "toy_components.png", "toy_lambda.csv",
         "toy_cka.csv", "toy_directions.csv", "verdicts.md", "verdicts.json"),
        part="tutorial",
    ),
    Notebook(
        "fig1_orders",
        "Fig. 1",
        "Consistent components of one filter, order by order, over the images",
        ("fig1_orders.csv", "fig1_orders_channels.csv", "fig1_orders.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig2_architecture",
        "Fig. 2",
        "The consistency network g for K = 3, drawn from the model, with parameters per branch",
        ("fig2_architecture.png", "fig2_architecture.csv",
         "fig2_sizes.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table1_instability",
        "Table 1",
        "Instability of learning: different initializations, different training data",
        ("table1.csv", "table1_vs_paper.csv", "verdicts.md", "verdicts.json"),
        plan="kc.studies.instability.plan:plan",
    ),
    Notebook(
        "table2_order_variances",
        "Table 2",
        "Variances of the consistent components x(0), x(1), x(2) and of x(Delta)",
        ("table2.csv", "table2_vs_paper.csv", "table2_centre.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table3_refinement",
        "Table 3",
        "Feature refinement: accuracy on consistent components vs. raw features",
        ("table3.csv", "table3_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table4_redundant",
        "Table 4",
        "Removing redundant features learned on a mixture / superset of classes",
        ("table4.csv", "table4_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "sec41_diagnosis",
        "Sec. 4.1, Fig. 3",
        "Network diagnosis: blind spots and unreliable features of a weak network",
        ("sec41.csv", "sec41_pairs.csv", "sec41_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig3_diagnosis",
        "Fig. 3, Sec. 4.1",
        "Blind spots and unreliable components of a weak network, over the images",
        ("fig3_diagnosis.csv", "fig3_diagnosis_blind_spots.png", "fig3_diagnosis_unreliable.png",
         "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig4_compression",
        "Fig. 4 (left), Sec. 4.4",
        "Information discarded by network compression (magnitude pruning up to 93.3%)",
        ("fig4_compression.csv", "fig4_compression_runs.csv", "fig4_compression.png",
         "fig4_compression_components.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig4_born_again",
        "Fig. 4 (right), Sec. 4.5",
        "Blind spots of born-again networks across generations",
        ("fig4_born_again.csv", "fig4_born_again_fits.csv", "fig4_born_again.png",
         "fig4_born_again_blind_spots.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig5_cross_task",
        "Fig. 5, Sec. 4.6",
        "Consistent and inconsistent features between a fine-grained and a binary task",
        ("fig5_cross_task.csv", "fig5_cross_task_summary.csv", "fig5_cross_task_a_to_b.png",
         "fig5_cross_task_b_to_a.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "baselines",
        "Beyond the paper",
        "Knowledge consistency beside linear/RBF CKA, SVCCA, PWCCA, Procrustes and ridge R^2 on "
        "the Table 1 pairs; a planted nonlinear case",
        ("baselines.csv", "baselines_agreement.csv", "baselines_planted.csv", "baselines.png",
         "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
    Notebook(
        "grounding",
        "Beyond the paper",
        "Ground truth as ReSi tests it: layer monotonicity, functional difference, input-noise "
        "groups; which measure wins",
        ("grounding.csv", "grounding_winners.csv", "grounding_pairs.csv", "grounding.png",
         "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
    Notebook(
        "planted",
        "Beyond the paper",
        "Planted structure: where the order decomposition recovers the linear, nonlinear and "
        "noise shares",
        ("planted.csv", "planted_identifiability.csv", "planted_noise_drop.csv", "planted.png",
         "planted_baselines.png", "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
)


def manifest_entry(name: str) -> Notebook | None:
    """The manifest entry called ``name``, or ``None``."""
    return next((nb for nb in MANIFEST if nb.name == name), None)


def project_root() -> Path:
    """The repository root: the folder above the ``kc`` package (installed editable)."""
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def notebooks_dir() -> Path:
    """Folder of the notebooks named in the manifest."""
    return project_root() / "notebooks"


def _manifest_listing() -> str:
    return ", ".join(nb.name for nb in MANIFEST)


def resolve_notebook(name_or_path: str | Path) -> Path:
    """Path of a notebook given its manifest name or a path to an ``.ipynb`` file.

    Raises:
        FileNotFoundError: a path that does not exist, or a manifest notebook not written yet.
        ValueError: a name that is not in the manifest (the message lists the manifest).
    """
    text = str(name_or_path)
    if text.endswith(".ipynb") or "/" in text or Path(text).is_file():
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"notebook {path} does not exist")
        return path.resolve()
    entry = manifest_entry(text)
    if entry is None:
        raise ValueError(f"unknown notebook {text!r}; the manifest has: {_manifest_listing()}")
    path = notebooks_dir() / f"{entry.name}.ipynb"
    if not path.is_file():
        state = "planned but not written yet" if entry.planned else "in the manifest"
        raise FileNotFoundError(f"notebook {entry.name!r} is {state}, but {path} does not exist")
    return path


def working_dir(notebook: Path) -> Path:
    """The folder papermill runs ``notebook`` in: the repository root above it (the folder
    holding ``pyproject.toml``), else the notebook's own folder."""
    for folder in notebook.resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return notebook.resolve().parent
