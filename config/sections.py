"""What every settings section shares: unknown keys are errors, values are frozen, and an owner is
written `queue:<Queue name>` or `user:<user email>`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

OwnerRef = Annotated[str, Field(pattern=r"^(queue|user):\S.*$")]
"""An owner is `queue:<Queue name>` or `user:<user email>`."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
