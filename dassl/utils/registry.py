"""Name -> class/function registries (trainers, datasets, evaluators, backbones, ...)."""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Registry"]


class Registry:
    """Maps the `__name__` of registered objects to the objects; names are unique."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if name in self._obj_map and not force:
            raise KeyError(f'An object named "{name}" was already registered in "{self._name}" registry')
        self._obj_map[name] = obj

    def register(self, obj: Any = None, force: bool = False) -> Any:
        """`REG.register(obj)` or as a decorator `@REG.register()`."""
        if obj is None:

            def wrapper(fn_or_class: Callable) -> Callable:
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            raise KeyError(f'Object name "{name}" does not exist in "{self._name}" registry')
        return self._obj_map[name]

    def registered_names(self) -> list[str]:
        return list(self._obj_map.keys())
