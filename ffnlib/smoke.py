"""The smoke switch: `FFN_SMOKE=1` shrinks every notebook to about a minute on a CPU (used by nbval)."""
from __future__ import annotations

import os


def enabled() -> bool:
    """True when the environment asks for smoke-sized runs (`FFN_SMOKE` set to anything but '' or '0')."""
    return os.environ.get("FFN_SMOKE", "") not in ("", "0")


def overrides(notebook: str, namespace: dict) -> dict:
    """With the switch on: the smoke profile's (configs/smoke.yaml) parameters for `notebook` (its
    stem, e.g. "04_train_tsm") among the names `namespace` defines; with the switch off: nothing.

    Notebooks call `globals().update(smoke.overrides("04_train_tsm", globals()))` right after their
    parameters cell, so nbval runs them at smoke size through the same code.
    """
    if not enabled():
        return {}
    from ffnlib import workbook

    return workbook.profile_parameters(workbook.load_profile("smoke"), workbook.find_notebook(notebook),
                                       set(namespace))
