"""The folders the web UI may read and write: every path a user types is checked here before anything touches it.

A path is allowed when it resolves (symlinks followed, ``..`` collapsed, relative paths taken from the UI's working
directory) to one of the roots given at start (``ltx-trainer ui --root DIR``) or to something inside one. A link
inside a root that points outside is refused like the outside path itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer.errors import UsageError


class PathRefused(UsageError):
    """A path outside the allowed roots (or an empty one where a path is needed)."""


@dataclass(frozen=True)
class Roots:
    """The allowed folders, resolved. Build with :meth:`of`."""

    folders: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Iterable[str | Path]) -> Roots:
        """Resolve and check the roots; each must be an existing folder.

        Raises:
            UsageError: a root that does not exist or is a file, or no root at all.
        """
        resolved = []
        for folder in folders:
            path = Path(folder).expanduser().resolve()
            if not path.is_dir():
                what = "is a file" if path.exists() else "does not exist"
                raise UsageError(f"--root {folder}: {what}; give an existing folder (create it first)")
            resolved.append(path)
        if not resolved:
            raise UsageError("--root: give at least one folder the UI may read and write")
        return cls(tuple(dict.fromkeys(resolved)))

    def describe(self) -> str:
        return ", ".join(str(f) for f in self.folders)

    def allows(self, path: str | Path) -> bool:
        resolved = _resolve(path)
        return any(resolved == root or resolved.is_relative_to(root) for root in self.folders)

    def check(self, path: str | Path | None, what: str) -> Path:
        """``path`` resolved, or :class:`PathRefused` naming ``what`` (a field label) and the allowed folders."""
        if path is None or not str(path).strip():
            raise PathRefused(f"{what}: empty; give a path under {self.describe()}")
        resolved = _resolve(path)
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.folders):
            raise PathRefused(
                f"{what}: {resolved} is outside the folders this UI may use ({self.describe()}); pick a path "
                "inside them, or restart `ltx-trainer ui` with --root for its folder"
            )
        return resolved

    def problem(self, path: str | Path | None, what: str) -> str | None:
        """The refusal message for ``path``, or None when it is allowed."""
        try:
            self.check(path, what)
        except PathRefused as e:
            return str(e)
        return None


def _resolve(path: str | Path) -> Path:
    return Path(str(path).strip()).expanduser().resolve()
