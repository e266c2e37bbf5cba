"""How policy weights travel from the learner to the actor. An interface, so ROS 2 can carry it later; the file
transport here works across processes on one machine (or a shared disk) and survives either side dying. The
learner's counters travel beside them (FileProgress): the actor's rate limiter in sim and train()'s metrics read them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch


class WeightsTransport(Protocol):
    def publish(self, version: int, weights: dict[str, Any]) -> None: ...

    def poll(self, have: int) -> tuple[int, dict[str, Any]] | None:
        """The newest weights if newer than version ``have``, else None. Never blocks."""
        ...


class FileWeights:
    """``dir/v<version>.pt`` written atomically (temp file + rename), ``dir/LATEST`` names the newest. Old
    versions beyond ``keep`` are deleted only after the newer one is in place."""

    def __init__(self, directory: str | Path, keep: int = 3):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def publish(self, version: int, weights: dict[str, Any]) -> None:
        save_atomic({"version": version, "weights": weights}, self.dir / f"v{version:08d}.pt")
        _write_atomic(self.dir / "LATEST", str(version))
        for old in sorted(self.dir.glob("v*.pt"))[: -self.keep]:
            old.unlink(missing_ok=True)

    def latest_version(self) -> int:
        try:
            return int((self.dir / "LATEST").read_text())
        except (FileNotFoundError, ValueError):
            return -1

    def poll(self, have: int) -> tuple[int, dict[str, Any]] | None:
        version = self.latest_version()
        if version <= have:
            return None
        try:
            blob = torch.load(self.dir / f"v{version:08d}.pt", map_location="cpu", weights_only=True)
        except FileNotFoundError:  # pruned between reading LATEST and loading: the next poll gets a newer one
            return None
        return blob["version"], blob["weights"]


class FileProgress:
    """The learner's counters as one small JSON file, replaced atomically: ``updates`` and ``critic_updates`` done,
    ``env_steps`` ingested, ``ready`` (it has a batch's worth of data), ``published_updates`` (the updates in the
    newest weights version). {} until the learner writes it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, **counters: int | bool) -> None:
        _write_atomic(self.path, json.dumps(counters))

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file, then rename: a crash mid-save leaves the previous file intact."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
