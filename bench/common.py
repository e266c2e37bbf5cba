"""Shared by the benchmarks: where results go and how they are written."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    import mujoco
    import os

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "mujoco": mujoco.__version__, "date": time.strftime("%Y-%m-%d")}


def write_result(name: str, result: dict) -> Path:
    """Write bench/results/<name>.json and print it (last, so logs end with the figures)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    text = json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2, default=_jsonable)
    path.write_text(text + "\n")
    print(text)
    return path


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x))
