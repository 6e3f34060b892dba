"""What one compute request may cost, checked before anything is built.

Every grid a client states (``POST /api/grids`` and the explorer's form) goes through
:func:`spec_from_request`: the cost is counted from the raw request (numbers of points,
inner chunk sizes, dataset name), with only true integers accepted where a count is meant,
*before* :meth:`phasemap.GridSpec.from_dict` builds any coordinate array. What depends on the
store (shards and points to compute) is checked by
:meth:`phasemap.service.jobs.JobManager.check` on the request's plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import GridTooLargeError, ParameterError, PhasemapError
from ..grid import GridSpec

#: Longest dataset name a client may give [characters].
MAX_NAME_LENGTH = 200


def _count(value: Any, where: str) -> int:
    """``value`` if it is a true integer >= 1 (not a string, a float or a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(where, value, "an integer >= 1 (a JSON number without quotes "
                                           "or decimals)")
    if value < 1:
        raise ParameterError(where, value, "an integer >= 1")
    return value


def check_request(data: Mapping[str, Any], *, max_points: int, max_chunk_points: int,
                  max_name_length: int = MAX_NAME_LENGTH) -> None:
    """Refuse a raw grid spec whose stated cost is over the limits, before it is parsed.

    Parameters
    ----------
    data : mapping
        The spec as the client sent it (JSON object).
    max_points : int
        Largest grid [points] (the product of the axes' lengths).
    max_chunk_points : int
        Largest inner chunk [points] a spec may ask for with ``chunks``.
    max_name_length : int
        Longest ``name`` [characters].

    Raises
    ------
    ParameterError
        A count that is not a true integer, a name too long, a chunk too large.
    GridTooLargeError
        More points than ``max_points``.
    """
    name = data.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise ParameterError("name", name, "a string")
        if len(name) > max_name_length:
            raise ParameterError("name", f"{len(name):,} characters",
                                 f"a name of at most {max_name_length} characters")
    axes = data.get("axes")
    points = 1
    if isinstance(axes, Mapping):
        for dim, value in axes.items():
            if isinstance(value, Mapping):
                points *= _count(value.get("num", 1), f"axes.{dim}.num")
            elif isinstance(value, list):
                points *= max(len(value), 1)
    if points > max_points:
        raise GridTooLargeError("grid", f"{points:,} points",
                                f"at most {max_points:,} points per grid on this server")
    chunks = data.get("chunks")
    if isinstance(chunks, Mapping):
        inner = math.prod(_count(c, f"chunks.{dim}") for dim, c in chunks.items())
        if inner > max_chunk_points:
            raise GridTooLargeError("chunks", f"{inner:,} points per chunk",
                                    f"chunks of at most {max_chunk_points:,} points on this "
                                    "server")


def spec_from_request(data: Any, *, max_points: int, max_chunk_points: int) -> GridSpec:
    """A client's grid spec checked against the limits (:func:`check_request`) and then
    through the one validation path; arithmetic failures on absurd numbers are reported as
    a bad spec, never as a server error."""
    if not isinstance(data, Mapping):
        raise ParameterError("spec", data, "a JSON object with model, params and axes")
    check_request(data, max_points=max_points, max_chunk_points=max_chunk_points)
    try:
        return GridSpec.from_dict(data)
    except PhasemapError:
        raise
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ParameterError("spec", "(grid spec)", "a grid spec with finite, moderate "
                                                    "numbers", detail=str(exc)[:200]) from None
