"""What keeps a web page in someone's browser from driving the server.

A page on another site can make the browser send requests to a server on loopback, and a DNS
name re-pointed at 127.0.0.1 makes them look same-site (DNS rebinding). With no token (the
default) the server therefore trusts a request only when

- its ``Host`` header names this server (:meth:`ServiceConfig.hosts`), on every request and
  websocket;
- a state-changing request (POST, PUT, PATCH, DELETE) carries no ``Origin`` or one from
  :meth:`ServiceConfig.origins`, and is not marked ``Sec-Fetch-Site: cross-site``;
- a write to ``/api`` is JSON (``Content-Type: application/json``): a page can send
  ``text/plain`` across sites without asking, never JSON;
- the explorer's websocket comes from an allowed ``Origin`` (browsers always send one).

Panel's FastAPI integration also serves ``/components/<module>/<class>/<attribute>/<path>``
by importing ``<module>``; :func:`replace_component_route` serves only resources of Panel
modules already imported, and imports nothing a request names.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from .config import ServiceConfig

#: Methods that change state.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_of(value: str) -> str:
    """The host name of a ``Host`` header or URL netloc, lower case, without port or
    brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def origin_netloc(origin: str) -> str | None:
    """``host:port`` of an ``Origin`` header (the scheme's default port filled in)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    host = parts.hostname.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RequestGuard:
    """ASGI middleware applying the rules above (answers 400, 403 or 415 with a JSON body).

    Parameters
    ----------
    app : ASGI app
    config : ServiceConfig
        Its :meth:`~ServiceConfig.hosts` and :meth:`~ServiceConfig.origins`.
    websocket_prefix : str
        Websockets under this path (the explorer's) need an allowed ``Origin``.
    """

    def __init__(self, app, config: ServiceConfig, websocket_prefix: str = "/explorer"):
        self.app = app
        self.hosts = frozenset(config.hosts())
        self.any_host = "*" in self.hosts
        self.origins = frozenset(config.origins())
        self.websocket_prefix = websocket_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        problem = self.problem(scope, headers)
        if problem is None:
            return await self.app(scope, receive, send)
        status, code, message = problem
        if scope["type"] == "websocket":
            # closing before accepting makes the server answer the handshake with 403
            return await send({"type": "websocket.close", "code": 1008, "reason": message})
        from .api import SafeJSONResponse

        response = SafeJSONResponse({"error": code, "message": message}, status_code=status,
                                    headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)

    def problem(self, scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """``(status, code, message)`` of the first rule the request breaks, else None."""
        host = headers.get("host")
        if not self.any_host and (host is None or host_of(host) not in self.hosts):
            return (400, "bad_host", "this server does not answer for that Host header")
        origin = headers.get("origin")
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            if path.startswith(self.websocket_prefix) and not self._origin_ok(origin):
                return (403, "bad_origin", "websocket from an origin this server does not "
                                           "allow")
            return None
        method = scope.get("method", "GET").upper()
        if method not in WRITES:
            return None
        if headers.get("sec-fetch-site", "").lower() == "cross-site" or (
                origin is not None and not self._origin_ok(origin)):
            return (403, "bad_origin", "a state-changing request from another site")
        if path.startswith("/api/"):
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json" and not (ctype.startswith("application/")
                                                   and ctype.endswith("+json")):
                return (415, "unsupported_media_type", "send the body as JSON with "
                                                       "Content-Type: application/json")
        return None

    def _origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return False
        netloc = origin_netloc(origin)
        return netloc is not None and netloc in self.origins


def replace_component_route(app, prefix: str = "") -> None:
    """Serve Panel's component resources without importing anything a request names.

    ``/components/<module>/<class>/<attribute>/<path>`` is answered only when ``<module>`` is
    a ``panel`` module this process has already imported; anything else is a 404 (never the
    500s Panel's own route gives for every refusal).
    """
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    path = f"{prefix}/components/{{path:path}}"
    app.router.routes[:] = [r for r in app.router.routes
                            if getattr(r, "path", None) != path]

    def not_found(message: str, status: int = 404):
        return JSONResponse({"error": "not_found", "message": message}, status_code=status)

    async def component_resource(request):
        from panel.io.server import ComponentResourceHandler
        from tornado.web import HTTPError

        rel = request.path_params["path"]
        module = rel.split("/", 1)[0]
        if not (module == "panel" or module.startswith("panel.")) or module not in sys.modules:
            return not_found("no such component resource")
        try:
            # an unbound call: parse_url_path reads no instance state
            resolved = ComponentResourceHandler.parse_url_path(
                ComponentResourceHandler, rel)  # type: ignore[arg-type]
        except HTTPError as exc:
            return not_found("no such component resource",
                             exc.status_code if exc.status_code in (400, 403, 404) else 404)
        except Exception:  # a malformed path: still nobody's business but a 404
            return not_found("no such component resource")
        return FileResponse(resolved, headers={"Cache-Control": "public, max-age=86400"})

    app.router.routes.append(Route(path, component_resource, methods=["GET", "HEAD"],
                                   include_in_schema=False))
