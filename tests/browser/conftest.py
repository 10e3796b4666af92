"""Fixtures of the browser test: a run folder, JupyterLab, Chromium, and each notebook run in it.

The tests here run only under `make test-browser` (it sets FFN_BROWSER=1 and installs
requirements-browser.txt); `make test` lists them as skipped. On a failure the page and the failing
outputs are saved as PNG files, with the notebooks as JupyterLab shows them, in FFN_BROWSER_ARTIFACTS
(default: scratch/browser), beside the lab's log, the notebooks papermill ran and timings.txt;
FFN_BROWSER_KEEP=1 saves the screenshots and notebooks after a pass too.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_driver import ROOT, Lab, NotebookPage, build_run_folder, chromium_path, launch_chromium, notebook_path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300  # the longest wait for one step (a notebook's Run All on a loaded 2-core machine)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FFN_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason="browser test: run it with `make test-browser`")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


def note(artifacts: Path, line: str) -> None:
    """How long each step took, in <artifacts>/timings.txt (pytest keeps the test's output to itself)."""
    with open(artifacts / "timings.txt", "a") as f:
        f.write(line + "\n")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("FFN_BROWSER_ARTIFACTS", ROOT / "scratch" / "browser")).resolve()
    shutil.rmtree(folder, ignore_errors=True)  # only this run's files in it
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def lab(tmp_path_factory, artifacts):
    """JupyterLab on a copy of notebooks/ (its autosaves never touch the checkout), with FFN_SMOKE=1
    and a fresh FFN_RUNS_DIR that notebooks 04 and 07 have trained into first; `lab.where` is what
    `make lab` would print first (`python -m ffnlib.notebooks where`) in that environment."""
    if not chromium_path():
        pytest.skip("no chromium: install it (Debian/Ubuntu: apt-get install chromium) or set FFN_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-browser.txt")
    tmp = tmp_path_factory.mktemp("lab")
    env = {**os.environ, "FFN_SMOKE": "1", "FFN_RUNS_DIR": str(tmp / "runs")}
    for stem, seconds in build_run_folder(env, artifacts / "papermill"):
        note(artifacts, f"{stem}: {seconds:.0f} s headless (reproduce --profile smoke)")
    where = subprocess.run([sys.executable, "-m", "ffnlib.notebooks", "where"], env=env, cwd=ROOT,
                           capture_output=True, text=True)
    (artifacts / "where.txt").write_text(where.stdout + where.stderr)  # what `make lab` prints first
    served = tmp / "notebooks"
    served.mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, served)
    started = time.monotonic()
    server = Lab(served, tmp / "state", env, artifacts / "jupyterlab.log")
    note(artifacts, f"jupyter lab: ready in {time.monotonic() - started:.0f} s on {server.url}")
    server.served = served
    server.where = where.stdout
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class Executed:
    """A notebook after Run All in JupyterLab, and where to keep what a failing check saw."""
    notebook: NotebookPage
    artifacts: Path
    served: Path

    @contextlib.contextmanager
    def kept_on_failure(self, step: str, *elements):
        """Run a check; when it fails, save the page and the given locators as PNG files."""
        try:
            yield
        except BaseException:
            self.save(step, *elements)
            raise

    def save(self, step: str, *elements) -> None:
        shots = self.artifacts / "screenshots"
        self.notebook.screenshot(shots, step)
        for k, element in enumerate(elements):
            for n in range(min(element.count(), 5)):
                element.nth(n).screenshot(path=str(shots / f"{self.notebook.name}-{step}-{k}.{n}.png"))
        with contextlib.suppress(Exception):  # what it shows is kept even when saving fails
            self.notebook.save()
            saved = self.served / f"{self.notebook.name}.ipynb"
            shutil.copy(saved, self.artifacts / f"{saved.stem}.in-lab.ipynb")


@pytest.fixture(scope="module", params=["02", "08"])
def executed(request, lab, browser, artifacts):
    """Notebook `param` opened in JupyterLab and run with Run All, the kernel idle again."""
    name = notebook_path(request.param).name
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    started = time.monotonic()
    notebook = NotebookPage(page, lab.open_url(name), Path(name).stem, TIMEOUT_S)
    result = Executed(notebook, artifacts, lab.served)
    with result.kept_on_failure("run-all"):
        notebook.run_all()
    note(artifacts, f"{name}: opened and Run All done in {time.monotonic() - started:.0f} s")
    yield result
    if os.environ.get("FFN_BROWSER_KEEP") == "1":
        result.save("end")
    page.close()
