"""The smoke switch: `FFN_SMOKE=1` shrinks every notebook to seconds on a CPU (used by nbval).

With the switch on, `ffnlib.profiles.notebook_parameters` runs a notebook as `reproduce --profile
smoke` would: the smoke profile (configs/smoke.yaml) instead of the notebook's own, and that profile's
values for the notebook's parameters, each change announced in the notebook's output.
"""
from __future__ import annotations

import os

PROFILE = "smoke"


def enabled() -> bool:
    """True when the environment asks for smoke-sized runs (`FFN_SMOKE` set to anything but '' or '0')."""
    return os.environ.get("FFN_SMOKE", "") not in ("", "0")
