"""The one error type for bad dataset input: it always names the offending file."""
from __future__ import annotations

from pathlib import Path


class BadInputError(ValueError):
    """A dataset file that cannot be used as it is.

    Attributes:
        path: the offending file (or the expected path when something is missing).
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.problem))
