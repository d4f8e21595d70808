"""Problems found in recipe or library data, and the one exception class that carries them.

Every problem names where it was found (file and line when the data came from YAML), the key
(dotted path, lab units as written in the file), what was wrong and what is allowed.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceMark:
    """A place in a YAML file: file name and 1-based line number."""

    file: str
    line: int

    def __str__(self) -> str:
        """Return ``file:line`` as editors and compilers print it."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with recipe or library data."""

    where: str          # "file:line", or "<recipe name>" for recipes built in code
    key: str            # dotted key path as written in the file, e.g. "press.li_25.hold_s"
    message: str        # what was wrong and what is allowed

    def __str__(self) -> str:
        """Return ``where: key: message``."""
        return f"{self.where}: {self.key}: {self.message}"


class RecipeError(Exception):
    """Recipe or library data was refused; ``problems`` lists every reason, each with its place."""

    def __init__(self, problems):
        """Store the problems (a non-empty sequence of ``Problem``) and build a readable message."""
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in recipe data"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class LibraryError(RecipeError):
    """The material and tooling library (config/library.yaml) was refused."""
