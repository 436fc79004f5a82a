"""Typed errors shared by every layer.

Each error carries the problem and the fix, so the CLI can print one line and exit 2 without a
traceback, and library callers can catch the precise kind they care about.
"""

from __future__ import annotations


class DigitkitError(Exception):
    """Bad input or environment: the user can fix it. The CLI prints one line and exits 2."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.problem}. {self.fix}" if self.fix else self.problem


class DataError(DigitkitError):
    """The MNIST files are missing, truncated or altered."""


class ArtifactError(DigitkitError):
    """An artifact or manifest is missing, unreadable or malformed."""


class HashMismatchError(ArtifactError):
    """A file differs from the sha256 its manifest recorded: it was changed after export."""


class SchemaVersionError(ArtifactError):
    """A manifest written by a newer digitkit than this one."""


class BackendUnavailableError(DigitkitError):
    """No installed runtime can run the artifact; the message names the pip extra to install."""


class InputError(DigitkitError):
    """An array or option of the wrong shape, type or value."""


class ImageError(DigitkitError):
    """A file that cannot be read as an image of a digit."""


class ExportError(DigitkitError):
    """A converter failed on a target: the message names the target and quotes the converter."""

    exit_code = 1


class GateError(DigitkitError):
    """Verification ran and an artifact failed a parity gate: a result, not bad input."""

    exit_code = 1
