"""The base of every benchmark config section: frozen, unknown keys and bad choices name the allowed ones."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Strict(BaseModel):
    """Base of every config section: frozen, no NaN or infinity, and an unknown key names the allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(map(str, data)) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(cls.model_fields))}"
                )
        return data


def choice(value: str, allowed: list[str], what: str) -> str:
    """``value`` if it is one of ``allowed``; otherwise an error naming them (``what`` names the kind)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed values: {', '.join(allowed)}")
    return value
