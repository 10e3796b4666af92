"""JupyterLab in a headless Chromium, for the browser test (`make test-browser`).

    build_run_folder(env, out)      notebooks 04 and 07 headless at smoke size with make demo's
                                    command, into the default run folder: the models 08 reads
    Lab(root, env, log)             `jupyter lab` on a free port with a token, settings in a temporary
                                    folder; `.stop()` ends it and its kernels
    launch_chromium(playwright)     Debian's chromium (nothing downloads a browser), headless
    NotebookPage(page, url)         open a notebook, Run All, wait for the kernel, read outputs and widgets

Everything waits on DOM states (JupyterLab's prompts, output mime types, ipywidgets' classes), never
on fixed sleeps, and nothing depends on cell indices or parameter names: the notebooks change.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 # without these Chromium dials out at start, and a closed network refuses it
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STDERR = "application/vnd.jupyter.stderr"  # JupyterLab renders errors and stderr streams with this mime type
# JupyterLab settings for the test: every cell in the DOM (no windowing), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


class LabError(RuntimeError):
    """The lab or a notebook did not get where the test needs it; the message says where it stopped."""


def notebook_path(phase: str) -> Path:
    """The workbook notebook of a phase number ("02" -> notebooks/02_sampling.ipynb)."""
    found = sorted(NOTEBOOKS.glob(f"{phase}_*.ipynb"))
    if len(found) != 1:
        raise LabError(f"expected one notebook {phase}_*.ipynb in {NOTEBOOKS}, found {[p.name for p in found]}")
    return found[0]


def chromium_path() -> str | None:
    """`FFN_CHROMIUM`, else chromium or chromium-browser on the PATH."""
    return os.environ.get("FFN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def build_run_folder(env: dict, out: Path, phases=("04", "07"), timeout: float = 600) -> list[tuple[str, float]]:
    """Train what notebook 08 reads the way a newcomer does before `make lab`: `make demo`'s command,
    `python -m ffnlib.workbook reproduce --profile P --only 04 07` without `--out`, so the models land
    in the run folder the notebooks use by default (runs/<P> under env's FFN_RUNS_DIR); P is the smoke
    profile, given by name as a newcomer would (FFN_SMOKE is left out of this command's environment; in
    the lab's, FFN_SMOKE=1 makes the notebooks use that profile too). The executed notebooks are copied
    to `out`. Returns (notebook, seconds) as `reproduce` timed them."""
    from ffnlib.paths import runs_dir
    from ffnlib.smoke import PROFILE

    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ffnlib.workbook", "reproduce", "--profile", PROFILE, "--only", *phases]
    result = subprocess.run(command, env={k: v for k, v in env.items() if k != "FFN_SMOKE"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)
    run_dir = Path(env["FFN_RUNS_DIR"]) / PROFILE if "FFN_RUNS_DIR" in env else runs_dir() / PROFILE
    for executed in run_dir.glob("*.ipynb"):
        shutil.copy(executed, out)
    if result.returncode:
        raise LabError(f"{' '.join(command[1:])} failed with code {result.returncode} (executed notebooks: {out}):\n"
                       + result.stderr[-3000:])
    seconds = json.loads((run_dir / "reproduce.json").read_text())["seconds"]
    return [(stem, seconds[stem]) for stem in sorted(seconds) if stem != "total"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """`jupyter lab` serving `root` on 127.0.0.1 with a fresh token, its settings and workspaces in
    `state`, its output in `log`. Kernels inherit `env`."""

    def __init__(self, root: Path, state: Path, env: dict, log: Path, timeout: float = 120):
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = state / "settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {**env, "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
               "JUPYTER_CONFIG_DIR": str(state / "config"), "IPYTHONDIR": str(state / "ipython")}
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.log = log
        self._log_file = open(log, "w")
        # its own session: stop() signals the server and the kernels it started, nothing else
        self.process = subprocess.Popen(command, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabError(f"jupyter lab exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise LabError(f"jupyter lab did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def open_url(self, path: str) -> str:
        """`path` opened in a workspace of its own: nothing else restored beside it (a shared
        workspace reopened the previous notebook, and Run All could land on that one)."""
        workspace = "".join(c if c.isalnum() else "-" for c in Path(path).stem)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # jupyter server shuts its kernels down on TERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:  # kernels it could not stop in time
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log_file.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


# ------------------------------------------------------------------------------------------ one notebook
# every code cell of the open notebook: its prompt ("[3]:", "[*]:", "[ ]:") and whether it is empty
# (JupyterLab does not run an empty cell, so it never gets a number)
_CELL_STATES = """[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')].map(cell => ({
    prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
    empty: ((cell.querySelector('.cm-content') || {}).textContent || '').trim() === ''}))"""
_KERNEL_IDLE = """() => {
  const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent.trim());
  const indicator = document.querySelector(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return status.some(t => / \\| Idle$/.test(t) && !t.startsWith('No Kernel'))
    && indicator !== null && indicator.dataset.status === 'idle';
}"""
_RUN_FINISHED = """(stderr) => {
  const cells = %s.filter(c => !c.empty);
  if (cells.length === 0) return false;
  const numbered = cells.every(c => /\\[\\d+\\]/.test(c.prompt));
  const waiting = cells.some(c => c.prompt.includes('*'));
  const failed = document.querySelector(`.jp-OutputArea-output[data-mime-type="${stderr}"]`);
  return numbered || (failed !== null && !waiting);
}""" % _CELL_STATES


class NotebookPage:
    """A notebook open in JupyterLab in `page`; `run_all()` runs it and waits for the kernel."""

    def __init__(self, page, url: str, name: str, timeout_s: float):
        self.page, self.name, self.timeout_ms = page, name, timeout_s * 1000
        page.goto(url, timeout=self.timeout_ms)
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell").first.wait_for(timeout=self.timeout_ms)
        self.wait_kernel_idle()

    def wait_kernel_idle(self) -> None:
        """A kernel is started, connected and idle: the status bar says "<kernel> | Idle" (not "No
        Kernel"), and the notebook's execution indicator agrees."""
        self.page.wait_for_function(_KERNEL_IDLE, timeout=self.timeout_ms, polling=250)

    def run_all(self) -> None:
        """Run > Run All Cells, then wait until every non-empty code cell has run (a number in its
        prompt) or, after an error, until none waits any more; then for the kernel to be idle."""
        self.page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        self.page.locator(".lm-Menu-item[data-command='runmenu:run-all']:not(.lm-mod-disabled), "
                          ".lm-Menu-item[data-command='notebook:run-all-cells']:not(.lm-mod-disabled)"
                          ).first.click(timeout=60_000)
        try:  # a cell leaves "[ ]" at once: queued ("[*]") or run
            self.page.wait_for_function(f"() => {_CELL_STATES}.some(c => !c.empty && /[*\\d]/.test(c.prompt))",
                                        timeout=60_000, polling=250)
        except Exception as e:
            raise LabError(f"{self.name}: Run All started no cell within 60 s") from e
        self.page.wait_for_function(_RUN_FINISHED, arg=STDERR, timeout=self.timeout_ms, polling=500)
        self.wait_kernel_idle()

    def save(self) -> None:
        """File > Save, then wait until the notebook's tab no longer shows unsaved changes."""
        self.page.locator(".lm-MenuBar-item", has_text="File").first.click()
        self.page.locator(".lm-Menu-item[data-command='docmanager:save']").first.click()
        self.page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
                                    timeout=30_000, polling=250)

    def cell_states(self) -> list[dict]:
        return self.page.evaluate(f"() => {_CELL_STATES}")

    def stderr_outputs(self) -> list[str]:
        return self.page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']").all_inner_texts()

    def broken_widgets(self) -> list[str]:
        """Outputs where a widget did not draw: ipywidgets' placeholder or error text."""
        texts = self.page.locator(".jp-OutputArea-output").all_inner_texts()
        return [t for t in texts if "Error displaying widget" in t or "Loading widget" in t
                or "Failed to load model class" in t]

    def output_images(self) -> list[str]:
        """The src (a data: URL, the PNG's bytes) of every image in the cells' outputs, in order."""
        return self.page.eval_on_selector_all(".jp-OutputArea-output img", "els => els.map(e => e.src)")

    def screenshot(self, folder: Path, step: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
