"""User code named in a sweep file: an import path `package.module:attribute`, or a name that an
installed package registers under an entry-point group (`ltray.archs`, `ltray.datasets`,
`ltray.techniques`). Registered built-in names win; the registries call `resolve` only for the
rest. Importing a plugin runs its code with the user's rights, like a Python script.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata as md
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from ltray.errors import ConfigError

GROUPS = {"arch": "ltray.archs", "dataset": "ltray.datasets", "technique": "ltray.techniques"}
_IDENT = r"[A-Za-z_]\w*"
IMPORT_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


class PluginError(ConfigError):
    """User code that cannot be imported or breaks its contract; `user_traceback` is the
    traceback of an exception raised inside it (shown with -v), or ''."""

    def __init__(self, message: str, user_traceback: str = ""):
        super().__init__(message)
        self.user_traceback = user_traceback


def is_import_path(name: str) -> bool:
    return isinstance(name, str) and IMPORT_PATH.match(name) is not None


def user_error(what: str, exc: BaseException) -> PluginError:
    """`what` raised `exc`: one line for the user, the traceback kept for -v."""
    text = " ".join(str(exc).split())[:200]
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return PluginError(f"{what} raised {type(exc).__name__}: {text}", tb)


def entry_points(kind: str) -> dict[str, list[md.EntryPoint]]:
    """Names registered for `kind` by installed packages (nothing is imported)."""
    found: dict[str, list[md.EntryPoint]] = {}
    for ep in md.entry_points(group=GROUPS[kind]):
        found.setdefault(ep.name, []).append(ep)
    return found


def is_known(kind: str, name: str) -> bool:
    """A plugin name by its form alone (an import path) or an entry point: nothing is imported."""
    return is_import_path(name) or name in entry_points(kind)


def _package(ep: md.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.value.partition(":")[0]


@dataclass(frozen=True)
class Reference:
    """Where a plugin name points: the import path it stands for and, for an entry point, its package."""

    name: str  # as written in the sweep file
    import_path: str
    package: str | None = None


def reference(kind: str, name: str) -> Reference | None:
    """The import path behind `name`, or None when it is neither an import path nor an entry point."""
    if is_import_path(name):
        return Reference(name, name)
    eps = entry_points(kind).get(name, [])
    if len(eps) > 1:
        packages = " and ".join(sorted(_package(ep) for ep in eps))
        raise PluginError(f"{kind} {name!r} is registered by two packages ({packages}); "
                          "uninstall one, or name the one you mean by its import path")
    if not eps:
        return None
    return Reference(name, eps[0].value.replace(" ", ""), _package(eps[0]))


@functools.cache
def load(import_path: str):
    """The object at `package.module:attribute` (imported once per process)."""
    module_name, _, attr = import_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise PluginError(f"no module named {e.name!r} (is it on PYTHONPATH, installed, or in py_modules?)") \
                from None
        raise user_error(f"importing {module_name!r}", e) from None
    except Exception as e:  # noqa: BLE001 - anything user code raises while importing
        raise user_error(f"importing {module_name!r}", e) from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def source_files(import_path: str) -> list[Path]:
    """The source file(s) of an imported plugin: its module's file, or a package's .py files."""
    module = sys.modules.get(import_path.partition(":")[0])
    path = getattr(module, "__file__", None)
    if path is None:
        return []
    path = Path(path)
    if path.name == "__init__.py":
        return sorted(path.parent.rglob("*.py"))
    return [path]


def source_digest(import_path: str) -> str:
    """SHA-256 over the plugin's source files (names and bytes): changes when its code does."""
    h = hashlib.sha256()
    for f in source_files(import_path):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def package_version(import_path: str) -> str | None:
    """The installed distribution's version of the plugin's top-level package, if it is installed."""
    top = import_path.partition(":")[0].split(".")[0]
    for dist in md.packages_distributions().get(top, []):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def is_remote(entry: str) -> bool:
    return "://" in entry


def local_py_module(entry: str) -> Path:
    """A py_modules entry that is a local package folder or .py file, as an absolute path."""
    path = Path(entry).expanduser().resolve()
    if not path.exists():
        raise PluginError(f"{entry}: no such package folder or .py file")
    if not (path.is_dir() or path.suffix == ".py"):
        raise PluginError(f"{entry}: a py_modules entry is a package folder, a .py file or a URI of a .zip")
    return path


def import_from(py_modules: list[str]) -> list[str]:
    """Make the local py_modules importable in this process (the driver checks plugins before Ray
    ships them to the workers); returns the runtime_env entries: absolute paths, URIs as given."""
    out = []
    for entry in py_modules:
        if is_remote(entry):
            out.append(entry)
            continue
        path = local_py_module(entry)
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
            importlib.invalidate_caches()
        out.append(str(path))
    return out


def resolve(kind: str, name: str, expected: type, public: str):
    """The plugin object `name` stands for, checked to be an `expected`; None when `name` is neither
    an import path nor an entry point. Errors start with the import path."""
    ref = reference(kind, name)
    if ref is None:
        return None
    try:
        obj = load(ref.import_path)
    except PluginError as e:
        raise PluginError(f"{ref.import_path}: {e}", e.user_traceback) from None
    if not isinstance(obj, expected):
        raise PluginError(f"{ref.import_path}: is a {type(obj).__name__}, not an {public} "
                          f"(the {kind} contract, see docs/plugins.md)")
    return obj
