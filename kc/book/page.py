"""One executed notebook made fit to publish as a page of the book.

:func:`publish_notebook` takes the notebook ``kc run`` executed (papermill's output) and returns
the page's notebook: a note after the title with the profile, the values it ran with and the
``kc run`` command that reproduces it (:func:`rerun_command`); the notebook's default
``parameters`` cell hidden (it holds the smoke defaults the run replaced) and papermill's
injected cell collapsed; no path of the build machine anywhere; every figure captioned and
labelled, so chapters can refer to it (``{numref}`table1_instability-fig-1```).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from kc.run import notebook_params, runner

__all__ = ["publish_notebook", "repository_settings", "rerun_command", "stale_banner"]


def _yaml_value(value: Any) -> str:
    """A value as ``kc run -p`` reads it: ``[0, 1]``, ``0.001``, ``fashion-mnist``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


@lru_cache(maxsize=16)
def _read_profile(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """A profile file's values, read once per version of the file (time and size key it)."""
    return runner.load_profile(path)


def _profile_values(profile: str) -> dict[str, Any]:
    """:func:`kc.run.runner.load_profile` of a shipped profile's name, read once per book build
    (every page's header asks for it twice)."""
    path = notebook_params.profile_file(profile)
    stat = path.stat()
    return copy.deepcopy(_read_profile(str(path), stat.st_mtime_ns, stat.st_size))


def rerun_command(name: str, parameters: Mapping[str, Any]) -> str:
    """The ``kc run`` command that reproduces a run with these injected ``parameters``.

    The profile comes from ``PROFILE``; a value that differs from the profile's (or that the
    profile does not set) becomes a ``-p NAME VALUE``. ``OUTPUT_DIR`` is never part of it.

    Example:
        >>> rerun_command("table1_instability", {"PROFILE": "smoke", "SEEDS": [0, 1, 2]})
        "kc run table1_instability --profile smoke -p SEEDS '[0, 1, 2]'"
    """
    profile = str(parameters.get("PROFILE", "small"))
    known = profile in runner.available_profiles()
    base = notebook_params.profile_values(_profile_values(profile), name) if known else {}
    command = ["kc", "run", name, "--profile", profile if known else f"{profile}.yaml"]
    for key, value in parameters.items():
        if key in ("PROFILE", "OUTPUT_DIR") or (key in base and base[key] == value):
            continue
        if not known:
            continue  # a custom profile file holds the values
        command += ["-p", key, _yaml_value(value)]
    return shlex.join(command)


def repository_settings() -> dict[str, str]:
    """Where the book's source lives online: ``{"url", "branch"}`` or ``{}``.

    Taken from ``KC_REPOSITORY_URL`` / ``KC_REPOSITORY_BRANCH``, else from GitHub Actions'
    ``GITHUB_SERVER_URL``, ``GITHUB_REPOSITORY`` and ``GITHUB_REF_NAME``.
    """
    url = os.environ.get("KC_REPOSITORY_URL", "")
    if not url and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        url = f"{server}/{os.environ['GITHUB_REPOSITORY']}"
    if not url:
        return {}
    branch = os.environ.get("KC_REPOSITORY_BRANCH") or os.environ.get("GITHUB_REF_NAME") or "main"
    return {"url": url.rstrip("/"), "branch": branch}


def _header(
    name: str,
    parameters: Mapping[str, Any],
    record: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> str:
    """The run note of a result page; ``parameters`` are the injected values, ``defaults`` the
    notebook's own (shown for the names nothing overrode)."""
    entry = runner.manifest_entry(name)
    profile = parameters.get("PROFILE", "?")
    shown = [(k, v) for k, v in parameters.items() if k not in ("PROFILE", "OUTPUT_DIR")]
    values = ", ".join(f"`{k} = {_yaml_value(v)}`" for k, v in shown) or "none"
    kept = [
        (k, v)
        for k, v in (defaults or {}).items()
        if k not in parameters and k not in ("PROFILE", "OUTPUT_DIR")
    ]
    if kept:
        values += "; the notebook's own defaults for the rest: " + ", ".join(
            f"`{k} = {_yaml_value(v)}`" for k, v in kept
        )
    when = str(record.get("started", ""))[:10]
    seconds = record.get("seconds")
    took = f" in {seconds:.0f} s" if isinstance(seconds, int | float) else ""
    if record.get("commit"):
        threads = record.get('threads')
        machine = f", {record.get('cores')} cores, {threads} thread{'' if threads == 1 else 's'}" if record.get("cores") else ""
        load = f", load {record.get('load')}" if record.get("load") is not None else ""
        took += f" (code at commit `{str(record['commit'])[:10]}`{machine}{load})"
    example = next(((k, v) for k, v in shown if k not in ("DEVICE",)), None)
    other = ""
    if example is not None:
        other = (
            f" Any value can be changed with `-p NAME VALUE` (read as YAML), for example "
            f"`{rerun_command(name, {'PROFILE': profile, example[0]: example[1]})} "
            f"-p {example[0]} ...`."
        )
    repo = repository_settings()
    source = f"`notebooks/{name}.ipynb`"
    if repo:
        source = f"[{source}]({repo['url']}/blob/{repo['branch']}/notebooks/{name}.ipynb)"
    item = f" ({entry.paper_item})" if entry else ""
    return "\n".join(
        [
            ":::{admonition} How this page was made",
            ":class: note",
            "",
            f"This page is the notebook {source}{item}, executed by `kc run` with the "
            f"**`{profile}` profile**{took}{' on ' + when if when else ''}. Values set by the "
            f"profile and `-p`: {values}.",
            "",
            "Reproduce it with",
            "",
            "```bash",
            rerun_command(name, parameters),
            "```",
            "",
            f"{other.strip()} Outputs go to `{_shown_root(profile)}/{name}/`. The download button at the top "
            "of the page gives this executed notebook; its collapsed *Parameters* cell holds the "
            "values above.",
            ":::",
        ]
    )


def _shown_root(profile: str) -> str:
    """Where ``kc run`` writes by default for ``profile``, as the page shows it."""
    from kc.run.results import default_output_root

    shipped = default_output_root(profile) != Path("outputs")
    return f"book/published/{profile}" if shipped else "outputs"


def _private_paths(outputs: Path, root: Path) -> list[tuple[str, str]]:
    """(path on the build machine, what the page shows instead), longest first."""
    shown = "outputs"
    try:  # published results (book/published/<profile>) keep their place
        inside = outputs.resolve().relative_to(root.resolve()).as_posix()
        if inside.startswith("book/published/"):
            shown = inside
    except ValueError:
        pass
    pairs = {str(outputs.resolve()): shown, str(root.resolve()): "."}
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.setdefault(home, "~")
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


_KERNEL_FILE = re.compile(r"/[\w./-]*?/ipykernel_\d+/\d+\.py")


def _scrub(text: str, paths: Sequence[tuple[str, str]]) -> str:
    """``text`` with the build machine's paths replaced (including IPython's cell files)."""
    for private, shown in paths:
        text = text.replace(private, shown)
    return _KERNEL_FILE.sub("<cell>", text)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _add_tag(cell: Any, tag: str) -> None:
    tags = _tags(cell)
    if tag not in tags:
        cell.setdefault("metadata", {})["tags"] = [*tags, tag]


def _headings(cells: Sequence[Any]) -> list[str]:
    """For each cell, the text of the last Markdown heading at or above it."""
    current, out = "", []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            found = re.findall(r"^#{1,4}\s+(.+?)\s*$", "".join(cell.get("source", "")), re.M)
            if found:
                current = found[-1]
        out.append(current)
    return out


def _caption_figures(nb: Any, name: str, profile: str) -> int:
    """Give every code cell with one image output a numbered, referenceable figure.

    A cell that already has ``metadata.mystnb.figure`` keeps it. Otherwise its label is
    ``<name>-fig-<k>`` and its caption the section the figure stands in. Returns the count.
    """
    entry = runner.manifest_entry(name)
    item = entry.paper_item if entry else name
    count = 0
    for cell, heading in zip(nb["cells"], _headings(nb["cells"]), strict=True):
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", [])
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        if len(images) != 1:
            continue
        # MyST-NB wraps every rich output of the cell in the figure: drop the plain-text
        # value the cell returned (e.g. the path save_figure returns), keep text and streams.
        cell["outputs"] = [
            o
            for o in outputs
            if o is images[0]
            or o.get("output_type") != "execute_result"
            or set(o.get("data", {})) - {"text/plain"}
        ]
        if len([o for o in cell["outputs"] if o.get("output_type") != "stream"]) != 1:
            continue
        count += 1
        meta = cell.setdefault("metadata", {}).setdefault("mystnb", {})
        if "figure" not in meta:
            what = heading.strip("# ").rstrip(".") or item
            meta["figure"] = {
                "caption": f"{what} ({item}; `{profile}` profile).",
                "name": f"{name}-fig-{count}",
            }
    return count


def _defaults(notebook: Path) -> dict[str, Any]:
    """The notebook's ``parameters`` cell as values ({} when it cannot be read)."""
    try:
        declared = runner.declared_parameters(notebook)
    except Exception:  # noqa: BLE001 - the note then lists the injected values only
        return {}
    values = {}
    for key, text in declared.items():
        try:
            values[key] = ast.literal_eval(str(text))
        except (ValueError, SyntaxError):
            values[key] = text
    return values


def stale_banner(name: str, why: str) -> dict[str, Any]:
    """The warning cell at the top of a page whose numbers predate a change (``why``)."""
    return {
        "cell_type": "markdown",
        "id": "kc-stale-banner",
        "metadata": {"tags": ["kc-stale-banner"]},
        "source": "\n".join(
            [
                ":::{warning} Stale results",
                f"The numbers on this page were computed before a change they depend on: "
                f"**{why}**. They are shown as they were; the scorecard counts their claims "
                f"apart. `kc run {name}` recomputes them and `kc status` lists every page's state.",
                ":::",
            ]
        ),
    }


def publish_notebook(
    executed: Path,
    name: str,
    record: Mapping[str, Any],
    outputs: Path,
    root: Path,
    stale: str = "",
) -> dict[str, Any]:
    """The executed notebook made fit for the book (a new notebook dict; nothing written).

    * a header cell after the title: profile, parameter values, the ``kc run`` command;
    * the notebook's default ``parameters`` cell is removed from the page (it stays in the
      downloaded file) and papermill's ``injected-parameters`` cell is collapsed;
    * ``OUTPUT_DIR`` and every other path of the build machine become ``outputs`` / ``.``;
    * figures kept as files beside the results are embedded again
      (:func:`kc.run.results.unpack_figures`), then get captions and labels
      (see :func:`_caption_figures`);
    * with ``stale`` (what changed since the run), a warning banner after the title.
    """
    from kc.run.results import unpack_figures

    paths = _private_paths(outputs, root)
    nb = json.loads(_scrub(executed.read_text(), paths))
    unpack_figures(nb, outputs)
    meta = nb.setdefault("metadata", {})
    papermill = meta.get("papermill", {})
    parameters = dict(papermill.get("parameters") or record.get("parameters") or {})
    for key in ("input_path", "output_path"):
        papermill.pop(key, None)
    if "OUTPUT_DIR" in parameters:
        parameters["OUTPUT_DIR"] = "outputs"
        papermill["parameters"] = parameters
    cells = nb.get("cells", [])
    for cell in cells:
        tags = _tags(cell)
        if "parameters" in tags:
            _add_tag(cell, "remove-cell")
        if "injected-parameters" in tags:
            source = "".join(cell.get("source", ""))
            source = re.sub(r"^OUTPUT_DIR = .*$", 'OUTPUT_DIR = "outputs"', source, flags=re.M)
            cell["source"] = source
            _add_tag(cell, "hide-input")
    header = {
        "cell_type": "markdown",
        "id": "kc-run-header",
        "metadata": {"tags": ["kc-run-header"]},
        "source": _header(name, parameters, record, _defaults(executed)),
    }
    first_md = next((i for i, c in enumerate(cells) if c.get("cell_type") == "markdown"), -1)
    cells.insert(first_md + 1, header)
    if stale:
        cells.insert(first_md + 1, stale_banner(name, stale))
    _caption_figures(nb, name, str(parameters.get("PROFILE", "?")))
    return nb
