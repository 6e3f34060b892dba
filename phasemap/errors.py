"""The package's exceptions.

Every error phasemap raises on purpose derives from :class:`PhasemapError`. Bad input is a
:class:`ParameterError` (also a :class:`ValueError`) whose message names the parameter, the
value and what is allowed; adapters (CLI, HTTP) turn it into one line or a 422 body using its
attributes rather than parsing the text.
"""

from __future__ import annotations

from typing import Any


class PhasemapError(Exception):
    """Base class of every error raised by phasemap on purpose."""


class ParameterError(PhasemapError, ValueError):
    """A parameter, axis or grid spec is not acceptable.

    Attributes
    ----------
    param : str
        Name of the offending parameter (``"dT"``, ``"axes.eps"``, ``"model"``, ...).
    value : Any
        The value that was rejected (or a short description of it).
    allowed : str
        What would have been accepted.
    """

    def __init__(self, param: str, value: Any, allowed: str, detail: str | None = None):
        self.param = param
        self.value = value
        self.allowed = allowed
        self.detail = detail
        msg = f"{param}={_short(value)} is not allowed: expected {allowed}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description, used by the HTTP service for 422 answers."""
        return {
            "param": self.param,
            "value": _short(self.value),
            "allowed": self.allowed,
            "message": str(self),
        }


class GridTooLargeError(ParameterError):
    """A grid exceeds the configured size limit."""


class StoreError(PhasemapError):
    """The store is missing, unreadable or inconsistent."""


class StoreCorrupted(StoreError):
    """A committed part of the store cannot be read: it was deleted, truncated or altered.

    The message names the family, the shard and the variable, never a filesystem path (it
    may reach HTTP answers). ``phasemap cache verify`` lists every such object and
    ``phasemap cache repair`` recomputes it.

    Attributes
    ----------
    family : str
        Key of the family holding the object.
    shard : tuple of int or None
        Index of the shard, or ``None`` for the family's metadata.
    variable : str
        Stored output (``"J_L"``, ...), or ``"*"``.
    problem : str
        What is wrong (``"missing"``, ``"CRC32C checksum mismatch"``, ...).
    """

    def __init__(self, family: str, shard: tuple[int, ...] | None, variable: str,
                 problem: str):
        self.family = family
        self.shard = shard
        self.variable = variable
        self.problem = problem
        where = "metadata" if shard is None else "shard " + (".".join(map(str, shard)) or "0")
        super().__init__(f"stored data is damaged: family {family} {where} {variable}: "
                         f"{problem}; run 'phasemap cache verify' and 'phasemap cache repair'")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
