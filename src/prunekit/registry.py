"""Name → class registries, so every score, scope and structure is reachable by a string or an object."""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of classes of one kind (``"score"``, ``"scope"``...), looked up by name."""

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make ``name`` resolve to the decorated class."""

        def deco(cls: type) -> type:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = cls
            cls.name = name
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._classes)

    def lookup(self, name: str) -> type | None:
        """The class registered under ``name`` (not an instance), or None."""
        return self._classes.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def get(self, spec: Any, **kwargs: Any) -> T:
        """An instance from a registered name, or ``spec`` itself when it already is one."""
        if isinstance(spec, self.base):
            return spec
        if isinstance(spec, type) and issubclass(spec, self.base):
            return spec(**kwargs)
        if isinstance(spec, str) and spec in self._classes:
            return self._classes[spec](**kwargs)
        raise UnknownNameError(
            f"unknown {self.kind} {spec!r}; valid {self.kind}s: {', '.join(self.names())}"
        )
