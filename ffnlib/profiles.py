"""Parameter profiles (configs/<name>.yaml) and the notebooks' parameters cells.

A profile has two sections:

    train:      TrainConfig fields: the data, the model and the training recipe. Every notebook that
                declares `profile` builds its config from them (plus its `overrides`), and
                `python -m ffnlib.train --config configs/<name>.yaml` reads the same section.
    notebooks:  by notebook (e.g. 05_tfd_vanilla), values for that notebook's own parameters
                (what `reproduce --profile <name>` injects, and what FFN_SMOKE=1 applies)

A notebook's parameters cell (tagged `parameters`) holds flat literals: `run_dir`, `profile`,
`overrides` (TrainConfig keys changed on top of the profile) and the notebook's own parameters. The
cell after it makes one call, `notebook_parameters("04_train_tsm", globals())`, which validates every
value by its name (`RULES`: one rule per parameter name, shared by every notebook), applies the smoke
switch (FFN_SMOKE=1: the smoke profile instead, and the smoke profile's values for the notebook, each
change announced), and returns the values, the TrainConfig and the run folder.
"""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import nbformat

from ffnlib import paper, smoke
from ffnlib.errors import ConfigError
from ffnlib.paths import PROJECT_ROOT, configs_dir
from ffnlib.runs import CHECKPOINT_NAMES, WorkbookRun, resolve_run_dir
from ffnlib.train.config import DEVICE_NAMES, TrainConfig, is_device_name, read_yaml_mapping

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
SECTIONS = ("train", "notebooks")
# The models of ffnlib.paper.MODELS notebook 07 trains (04 trains the TSMs: vanilla, ST, fine-tuning).
NOTEBOOK_07_MODELS = tuple(name for name, changes in paper.MODELS.items()
                           if changes["recipe"] not in paper.TRAINED_BY_NOTEBOOK_04)


# ------------------------------------------------------------------------------------------ notebooks
def notebooks() -> list[Path]:
    """The workbook's notebooks in phase order (01_data.ipynb, 02_sampling.ipynb, ...)."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def find_notebook(name: str | Path) -> Path:
    """A notebook by path, file name, stem (04_train_tsm) or phase number (04, 4)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for nb in notebooks():
        if str(name) in (nb.name, nb.stem) or (str(name).isdigit() and nb.stem.startswith(f"{int(name):02d}_")):
            return nb
    raise ConfigError(f"no notebook {str(name)!r}; the workbook has {[nb.stem for nb in notebooks()]}")


def parameters_cell(nb, notebook: Path):
    """The one code cell of `nb` (read from `notebook`) tagged `parameters`."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(f"{Path(notebook).name}: expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def declared_parameters(notebook: Path) -> dict:
    """The parameters a notebook declares in its `parameters` cell: name -> default value.

    Read with `ast` (every top-level `name = literal`), so comments of any shape are fine; a notebook
    without a `parameters` cell, or with a non-literal default, is an error.
    """
    declared = {}
    for node in ast.parse(parameters_cell(nbformat.read(notebook, as_version=4), notebook).source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(f"{notebook.name}: the parameters cell may only hold `name = literal` lines, "
                              f"found {ast.unparse(node)!r}")
        try:
            declared[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(f"{notebook.name}: parameter {node.targets[0].id} is not a flat literal "
                              f"({ast.unparse(node.value)})") from None
    return declared


# ------------------------------------------------------------------------------------------ profiles
def profile_path(profile: str | Path) -> Path:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        return path
    return configs_dir() / f"{profile}.yaml"


def load_profile(profile: str | Path) -> dict:
    """A profile as {"name", "path", "train": {...}, "notebooks": {stem: {...}}}, its train section
    validated and every notebook section checked against that notebook's parameters cell."""
    path = profile_path(profile)
    if not path.exists():
        known = sorted(p.stem for p in configs_dir().glob("*.yaml"))
        raise ConfigError(f"{path}: no such profile; profiles in configs/: {known}")
    data = read_yaml_mapping(path, "sections ('train', 'notebooks')")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; a profile has 'train' and 'notebooks'")
    train = data.get("train") or {}
    TrainConfig.from_dict(train, source=f"{path} (train)")  # types and names checked now, not mid-run
    by_notebook = data.get("notebooks") or {}
    stems = {nb.stem: nb for nb in notebooks()}
    strangers = sorted(set(by_notebook) - set(stems))
    if strangers:
        raise ConfigError(f"{path}: notebooks {strangers} do not exist; the workbook has {sorted(stems)}")
    for stem, values in by_notebook.items():
        declared = declared_parameters(stems[stem])
        undeclared = sorted(set(values or {}) - set(declared))
        if undeclared:
            raise ConfigError(f"{path}: {stem} does not declare {undeclared} in its parameters cell "
                              f"(it declares {sorted(declared)})")
    return {"name": path.stem, "path": str(path), "train": train, "notebooks": by_notebook}


def profile_parameters(profile: dict, notebook: Path) -> dict:
    """The values `profile` gives `notebook`'s parameters: `profile` itself where the notebook
    declares it, then the profile's section for that notebook."""
    declared = declared_parameters(notebook)
    given = {"profile": profile["name"]} if "profile" in declared else {}
    return {**given, **(profile["notebooks"].get(notebook.stem) or {})}


def train_config(profile: dict, overrides: dict | None = None, source: str = "") -> TrainConfig:
    """The TrainConfig of `profile`'s train section with `overrides` on top (keys checked)."""
    where = source or f"{profile['path']} (train) with overrides {overrides or {}}"
    return TrainConfig.from_dict({**profile["train"], **(overrides or {})}, source=where)


# ------------------------------------------------------------------------------------------ one rule per name
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v):
    return None if _is_int(v) and v >= 1 else "a positive integer"


def _non_negative(v):
    return None if _is_int(v) and v >= 0 else "an integer >= 0"


def _frames(minimum: int = 1) -> Callable:
    def rule(v):
        ok = isinstance(v, list) and len(v) >= minimum and all(_is_int(t) and t >= 1 for t in v) \
            and len(set(v)) == len(v)
        return None if ok else f"a list of at least {minimum} distinct positive frame counts"
    return rule


def _one_of(*options) -> Callable:
    return lambda v: None if v in options else f"one of {list(options)}"


def _of_type(kind: type, what: str) -> Callable:
    return lambda v: None if isinstance(v, kind) and not (kind is not bool and isinstance(v, bool)) else what


def _names(v):
    return None if isinstance(v, list) and all(isinstance(x, str) and x for x in v) else "a list of names"


def _names_of(known, what: str) -> Callable:
    def rule(v):
        ok = isinstance(v, list) and all(isinstance(x, str) for x in v) and set(v) <= set(known) and len(set(v)) == len(v)
        return None if ok else f"a list of distinct {what}: {', '.join(known)}"
    return rule


def _device(v):
    return None if is_device_name(v) else DEVICE_NAMES


RULES: dict[str, Callable] = {
    # every notebook
    "run_dir": _of_type(str, "a folder (\"\": runs/<profile>)"),
    "profile": _of_type(str, "a profile name in configs/ or a YAML path"),
    "overrides": _of_type(dict, "a dict of TrainConfig keys"),
    "interactive": _of_type(bool, "True or False"),
    "seed": _non_negative,
    # data
    "split": _one_of("train", "validation"),
    "video_index": _non_negative,
    "num_videos_shown": _positive,
    "num_frames_shown": _positive,
    "max_videos_scanned": _non_negative,
    "num_videos_listed": _positive,
    "num_epochs_drawn": _positive,
    "frame_counts": _frames(1),
    # models
    "num_frames": _positive,
    "batch_size": _positive,
    "fold_div": _positive,
    "adaconv_init": _one_of("paper", "official"),
    "shift_mode": _one_of("per_branch", "official"),
    "timing_batch_size": _positive,
    "timing_steps": _positive,
    # training
    "st_frame_counts": _frames(0),
    "finetune_frame_counts": _frames(0),
    "models": _names_of(NOTEBOOK_07_MODELS, "model names of ffnlib.paper.MODELS trained by notebook 07"),
    "paper_tables": _names_of(paper.PAPER_TABLES, "names of the paper's tables (ffnlib.paper.PAPER_TABLES)"),
    # evaluation
    "model_name": _of_type(str, "a model folder name such as 'vanilla_16f'"),
    "checkpoint": _one_of(*CHECKPOINT_NAMES),
    "eval_frames": _frames(1),
    "bn_eval_frames": _frames(0),
    "bn_batches": _positive,
    "num_workers": _non_negative,
    "device": _device,
    "threads": _non_negative,
    "max_videos": _non_negative,
    "run_dirs": _names,
    "explorer_models": _names,
    "explorer_frames": _frames(1),
}


def check_value(name: str, value, where: str) -> None:
    """Raise ConfigError unless `value` satisfies the rule of parameter `name`."""
    if name not in RULES:
        raise ConfigError(f"{where}: parameter {name!r} has no rule in ffnlib.profiles.RULES")
    expected = RULES[name](value)
    if expected:
        raise ConfigError(f"{where}: {name}={value!r}: expected {expected}")


# ------------------------------------------------------------------------------------------ in a notebook
class NotebookParameters(SimpleNamespace):
    """A notebook's validated parameters (attributes), with `config` (TrainConfig; where the notebook
    declares `overrides`), `run` (WorkbookRun; where it declares `run_dir`) and `notes` (what the
    smoke switch changed). Shown in a notebook, it says where its settings come from."""

    def _repr_markdown_(self) -> str:
        return "\n".join(self.notes)

    def __repr__(self) -> str:
        return "\n".join(self.notes)


def notebook_parameters(stem: str, namespace: dict) -> NotebookParameters:
    """The parameters notebook `stem` runs with, from its namespace (`globals()` after its parameters
    cell): checked by name, the smoke switch applied, the profile loaded (see the module docstring)."""
    notebook = find_notebook(stem)
    declared = declared_parameters(notebook)
    values = {name: namespace[name] for name in declared}
    notes: list[str] = []
    if smoke.enabled():
        values, notes = _smoke(notebook, declared, values)
    for name, value in values.items():
        check_value(name, value, f"{stem}")
    p = NotebookParameters(**values, notes=notes, config=None, run=None)
    if "profile" in values:
        profile = load_profile(values["profile"])
        if "overrides" in values:
            p.config = train_config(profile, values["overrides"], source=f"{stem}: profile {profile['name']}"
                                    f"{', overrides ' + str(values['overrides']) if values['overrides'] else ''}")
        changed = f", with overrides `{values['overrides']}`" if values.get("overrides") else ""
        if profile["name"] == smoke.PROFILE and not smoke.enabled():  # FFN_SMOKE=1 has said it already
            changed += ". **A plumbing check, not a result**"
        notes.insert(len(notes[:1]), f"Settings: profile **{profile['name']}** (`{_shown(profile['path'])}`){changed}.")
    if "run_dir" in values:
        p.run = WorkbookRun(resolve_run_dir(values["run_dir"], values.get("profile", "demo")))
        notes.append(f"Run folder: `{p.run.root}`.")
    return p


def _shown(path: str | Path) -> str:
    """A path as a reader would type it: from the project root when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def _smoke(notebook: Path, declared: dict, values: dict) -> tuple[dict, list[str]]:
    """FFN_SMOKE=1: the smoke profile instead of the notebook's, its values for this notebook, and a
    line per change."""
    profile = load_profile(smoke.PROFILE)
    given = profile_parameters(profile, notebook)
    changes = {k: (values[k], v) for k, v in given.items() if values[k] != v}
    if "profile" in declared:
        before = train_config(load_profile(values["profile"]), values.get("overrides"))
        after = train_config(profile, values.get("overrides"))
        changes.update({f"config.{k}": (getattr(before, k), getattr(after, k)) for k in before.to_dict()
                        if getattr(before, k) != getattr(after, k)})
    values = {**values, **given}
    text = ", ".join(f"`{k}` {a!r} → {b!r}" for k, (a, b) in changes.items()) or "nothing"
    return values, [f"**FFN_SMOKE=1: a plumbing check, not a result.** The smoke profile "
                    f"(`configs/{smoke.PROFILE}.yaml`) shrinks this notebook to seconds; changed: {text}."]
