"""User-facing errors: anything a user can fix (a bad sweep file, a missing dataset, a corrupt
mask file) raises an LtrayError, which command-line entry points print as one line and exit 2."""


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


def unknown_key_message(kind: str, name: str, known) -> str:
    """One line naming the unknown key and listing the known ones."""
    return f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}"
