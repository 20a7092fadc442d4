"""What every command-line entry point of the project shares: one-line errors and own packages.

- `one_line_errors`: decorates a `main(argv=None) -> int` so that a mistake the user can fix
  (a `UserError`, or a missing/forbidden file) ends with one `error: ...` line on stderr and exit
  code 2. With DASSL_DEBUG=1 the exception propagates with its traceback. Any other exception
  is a bug and keeps its traceback.
- `import_project_module`: the project's own `clip`, `datasets`, ... loaded from this checkout
  even where a same-named distribution (Hugging Face `datasets`, OpenAI's `clip`) comes first on
  sys.path; where that one is already imported, one line says what shadows what.

Importing this module is cheap (no torch), so light scripts such as parse_test_res.py use it too.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys
from types import ModuleType
from typing import Callable, Optional, Sequence

DEBUG_ENV = "DASSL_DEBUG"
EXIT_USER_ERROR = 2
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UserError(Exception):
    """A mistake in the command line, its files or the environment, reported as one line."""


class ConfigError(UserError, ValueError):
    """A config value a trainer or model cannot work with."""


class ShadowedPackageError(UserError, ImportError):
    """Another installed package took the name of one of the project's packages."""


# Besides UserError: the file-system mistakes a user makes with paths.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def one_line(error: BaseException) -> str:
    """The error's message on one line.

    An exception re-raised by a DataLoader worker carries the worker's traceback in its message;
    its last line ("module.Type: message") holds the message itself.
    """
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        prefix = f"{type(error).__module__}.{type(error).__name__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last.split(": ", 1)[-1]
    return " ".join(text.split()) or type(error).__name__


def report(error: BaseException, prog: str = "") -> int:
    """Print the one-line message of a user error; return the exit code."""
    print(f"{prog + ': ' if prog else ''}error: {one_line(error)}", file=sys.stderr)
    return EXIT_USER_ERROR


def one_line_errors(main: Optional[Callable[..., Optional[int]]] = None, *,
                    extra: Sequence[type[BaseException]] = ()):
    """Decorator for entry points: user errors (USER_ERRORS + `extra`) -> one line, exit code 2.

    The wrapped function's int result is the exit code; any other result (None, ...) counts as 0.
    """
    caught = tuple(USER_ERRORS) + tuple(extra)

    def decorate(func: Callable[..., Optional[int]]) -> Callable[..., int]:
        @functools.wraps(func)
        def wrapper(*args, **kwargs) -> int:
            try:
                result = func(*args, **kwargs)
            except caught as error:
                if debugging():
                    raise
                return report(error)
            return result if isinstance(result, int) else 0

        return wrapper

    return decorate if main is None else decorate(main)


def _is_within(module: ModuleType, folder: str) -> bool:
    paths = list(getattr(module, "__path__", []) or [])
    if getattr(module, "__file__", None):
        paths.append(os.path.dirname(module.__file__))
    return any(os.path.realpath(p) == os.path.realpath(folder) for p in paths)


def import_project_module(name: str) -> ModuleType:
    """The project's top-level package (or module `name`.py) from PROJECT_ROOT, imported once.

    Loaded by file location, so a same-named package earlier on sys.path (site-packages, the
    current folder) cannot take its place. If a foreign `name` is already imported, it cannot be
    replaced without breaking the code that uses it: ShadowedPackageError says what shadows what.
    """
    package_dir = os.path.join(PROJECT_ROOT, name)
    is_package = os.path.isdir(package_dir)
    location = os.path.join(package_dir, "__init__.py") if is_package else package_dir + ".py"
    folder = package_dir if is_package else PROJECT_ROOT
    module = sys.modules.get(name)
    if module is not None:
        if _is_within(module, folder):
            return module
        where = getattr(module, "__file__", None) or list(getattr(module, "__path__", None) or ["?"])[0]
        raise ShadowedPackageError(
            f"`{name}` is already imported from {where}, which shadows the project's "
            f"{location}; the two cannot be imported in one Python process: use the project in a "
            "process that has not imported that package")
    spec = importlib.util.spec_from_file_location(
        name, location, submodule_search_locations=[package_dir] if is_package else None)
    if spec is None or spec.loader is None:
        raise ShadowedPackageError(f"cannot load the project's `{name}` from {location}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def use_project_packages(names: Sequence[str] = ("clip", "datasets")) -> None:
    """Make `import clip` / `import datasets` resolve to the project's packages (see above)."""
    for name in names:
        import_project_module(name)
