"""What every settings section shares: unknown keys are errors, values are frozen, an owner is written
`queue:<Queue name>` or `user:<user email>`, an email address is checked and lower-cased, and a secret
comes inline or from a file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

OwnerRef = Annotated[str, Field(pattern=r"^(queue|user):\S.*$")]
"""An owner is `queue:<Queue name>` or `user:<user email>`."""


def _email_address(v: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", v):
        raise ValueError(f"not an email address: {v!r}")
    return v.lower()


EmailAddress = Annotated[str, AfterValidator(_email_address)]
"""An email address (one @, no spaces), kept in lower case: how routing addresses are compared."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(value: str, path: str) -> str:
    """The secret given inline, or the content of its file, read when called (so replacing the file
    rotates the secret without a restart). Raises OSError when the file cannot be read."""
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return value
