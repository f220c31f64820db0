"""User-facing errors: anything a user can fix (a bad sweep file, a missing dataset, a corrupt
mask file) raises an LtrayError, which command-line entry points print as one line and exit 2."""

import reprlib


class LtrayError(Exception):
    """A mistake the user can fix; the message names the file and/or field."""


class ConfigError(LtrayError):
    """An invalid sweep file, cluster file or option."""


class DatasetError(LtrayError):
    """An unknown dataset or view, or dataset files that are missing."""


class MaskFileError(LtrayError):
    """A mask file that is truncated, corrupt, or does not fit the architecture."""


class ExperimentError(LtrayError):
    """An experiment folder that cannot be created, resumed or read."""


# modules that only an extra brings: a command that needs a missing one names the extra to install
EXTRA_MODULES = {"torch", "torchvision", "ray", "pandas", "pyarrow", "mlxtend", "sklearn", "matplotlib",
                 "jsonschema", "packaging"}


def missing_extra(command: str, module: str, extra: str) -> str:
    """The one line a command prints when the extra it needs is not installed."""
    return f"{command}: needs {module}, which comes with the {extra} extra: pip install 'ltray[{extra}]'"


def missing_extra_of(e: ModuleNotFoundError, command: str, extra: str | None) -> str | None:
    """`missing_extra`'s line when `e` is a module of an extra, else None (a real bug: its traceback)."""
    module = (e.name or "").split(".")[0]
    return missing_extra(command, module, extra) if extra and module in EXTRA_MODULES else None


def unknown_key_message(kind: str, name: str, known) -> str:
    """One line naming the unknown key and listing the known ones (user-defined ones can be long)."""
    names = [clip(k) for k in sorted(map(str, known))]
    more = f", ... ({len(names) - 30} more)" if len(names) > 30 else ""
    return f"unknown {kind} {short_repr(name)}; known: {', '.join(names[:30])}{more}"


def clip(text: str, limit: int = 40) -> str:
    """A user's key or name, cut short for a message (a path part, an entry of a list)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_REPR = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_REPR.maxlevel = 3
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 4
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def short_repr(value, limit: int = 60) -> str:
    """A user's value in a message: at most `limit` characters, built without walking (or
    expanding) more than a few levels and items of it, so a huge or aliased value stays cheap."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int beyond Python's 4300-digit str() limit
        text = f"<{type(value).__name__} of {value.bit_length()} bits>" if isinstance(value, int) else "<?>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(exc: BaseException) -> str:
    """An exception as one line for a trial's error.json and the console: ltray's own errors by
    their message (it names what failed), others with their class name."""
    text = " ".join(str(exc).split()) or "(no message)"
    return text if isinstance(exc, LtrayError) else f"{type(exc).__name__}: {text}"
