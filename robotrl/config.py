"""YAML configs validated by pydantic models. A bad key or value fails with the file, the key and what is allowed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound="StrictModel")


class ConfigError(ValueError):
    """A config file or override that does not validate. The message names the source, the key and the rule."""


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def configs_dir() -> Path:
    """The shipped configs/ folder (the repo's top-level configs/, installed as robotrl.configs)."""
    return Path(str(resources.files("robotrl.configs")))


def config_path(name_or_path: str | Path, kind: str) -> Path:
    """A config given as a file (a .yaml path, or any existing file) or by name: configs/<kind>/<name>.yaml,
    found from any working directory (``kind``: tasks, learners, graphs)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    path = configs_dir() / kind / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (configs_dir() / kind).glob("*.yaml"))
        raise ConfigError(f"no config {name_or_path!r} in configs/{kind}/; known: {', '.join(known)} (or give a .yaml path)")
    return path


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def describe_error(err: dict, prefix: str = "") -> str:
    """One pydantic error as "key '<prefix><path>': <what is wrong> (got <value>)"."""
    key = prefix + ".".join(str(part) for part in err["loc"]) if err["loc"] else prefix.rstrip(".") or "<root>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"key '{key}': {msg} (got {err.get('input')!r})"


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(model: type[M], *sources: str | Path | Mapping[str, Any] | None) -> M:
    """Validate ``model`` from YAML files and/or dicts, later sources overriding earlier ones key by key.

    Every error names where the offending value came from, e.g.
    ``configs/tasks/arm_pick_cube.yaml: key 'safety.max_speed': Input should be greater than 0 (got -1)``.
    """
    merged: dict = {}
    origin: dict[str, str] = {}
    for source in sources:
        if source is None:
            continue
        if isinstance(source, Mapping):
            data, name = dict(source), "overrides"
        else:
            data, name = read_yaml(source), str(source)
        for key in _flat_keys(data):
            origin[key] = name
        merged = _deep_merge(merged, data)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            src = next((origin[k] for k in _prefixes(key) if k in origin), "config")
            lines.append(f"{src}: {describe_error(err)}")
        raise ConfigError(f"invalid {model.__name__}: " + "; ".join(lines)) from None  # one line: CLI errors are one line


def _flat_keys(data: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        full = f"{prefix}{key}"
        keys.append(full)
        if isinstance(value, Mapping):
            keys.extend(_flat_keys(value, full + "."))
    return keys


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
