"""Loading settings: read the TOML file, apply `CASEGATE_*` overrides, turn every problem into a
`ConfigError` whose lines name the key (`store.url: ...`) — never a traceback."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from casegate.config.settings import Settings
from pydantic import ValidationError

ENV_CONFIG = "CASEGATE_CONFIG"


class ConfigError(Exception):
    """Settings that cannot be used; `str()` is a message naming every bad key and why."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _problems(err: ValidationError, env: Mapping[str, str]) -> list[str]:
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = _key_of(loc)
        env_name = "CASEGATE_" + "__".join(str(p).upper() for p in loc if isinstance(p, str))
        origin = f" (from {env_name})" if env_name in env else ""
        reason = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        if e["type"] != "extra_forbidden" and "input" in e and not isinstance(e["input"], dict | list):
            reason += f", got {e['input']!r}"
        out.append(f"{key}{origin}: {reason}")
    return out


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from `path` (or `$CASEGATE_CONFIG`, or only defaults) with `CASEGATE_*` overrides."""
    path = path or os.environ.get(ENV_CONFIG) or None
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file not found: {p}"]) from None
        except OSError as e:
            raise ConfigError([f"config file {p} cannot be read: {e.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError([f"config file {p} is not valid TOML: {e}"]) from None
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_problems(e, os.environ)) from None
