"""The smoke switch: `FFN_SMOKE=1` shrinks every notebook to about a minute on a CPU (used by nbval)."""
from __future__ import annotations

import os


def enabled() -> bool:
    """True when the environment asks for smoke-sized runs (`FFN_SMOKE` set to anything but '' or '0')."""
    return os.environ.get("FFN_SMOKE", "") not in ("", "0")


def shrink(params: dict, **small) -> dict:
    """`params` with the values in `small` substituted when the smoke switch is on, else unchanged."""
    return {**params, **small} if enabled() else dict(params)
