"""The service: the HTTP JSON API and the phase-map explorer, served by one process.

``phasemap serve`` runs :func:`serve`; tests and embedders build the ASGI app with
:func:`create_app`. Compute requests from the API, the explorer and the start-up precompute
share one :class:`JobManager` (one Dask client, one computation per dataset id).
"""

from .app import EXPLORER_PATH, create_app, paper_specs, precompute, serve
from .config import ServiceConfig
from .jobs import Job, JobManager

__all__ = ["EXPLORER_PATH", "Job", "JobManager", "ServiceConfig", "create_app", "paper_specs",
           "precompute", "serve"]
