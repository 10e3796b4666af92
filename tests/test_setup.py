"""The set-up files agree with each other: the pinned CPU set, pyproject's ranges, the conda env."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ENV_ONLY = {"torchvision"}  # fetches ImageNet weights by name on a cluster; ffnlib never needs it


def names(requirements):
    return {re.split(r"[<>=!~ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def pyproject_names():
    return names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def test_environment_yml_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section
    assert names(p for p in pip_section if p != "-e .") - ENV_ONLY == pyproject_names()


def test_requirements_pin_every_pyproject_package_exactly():
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert all("==" in l for l in lines), lines
    assert names(lines) == pyproject_names()
    assert "torch==2.13.0" in lines  # the local CPU wheel; anything else pulls CUDA packages


@pytest.mark.slow
def test_ffnlib_imports_without_torchvision():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torchvision'] = None\n"  # any import of it now fails
            "import ffnlib.video, ffnlib.datasets, ffnlib.synthetic, ffnlib.models, ffnlib.losses, "
            "ffnlib.train, ffnlib.tfd, ffnlib.workbook, ffnlib.plots.data, ffnlib.plots.tfd\n"
            "from ffnlib.models import create_model; create_model('tsm_small', 4)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gitignore_keeps_runs_out_but_its_readme():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/runs/*" in ignore and "!/runs/README.md" in ignore
    assert (ROOT / "runs" / "README.md").exists()


def test_browser_requirements_are_pinned_apart_from_the_default_set():
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["browser"]
    lines = [l.strip() for l in (ROOT / "requirements-browser.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert all("==" in l for l in lines) and names(lines) == names(optional)
    assert not names(lines) & pyproject_names()  # `make test` and `make demo` never install them
