"""Every failure of a request becomes a JSON `ApiError` with the right status, never a trace.

A hostile or broken request must cost the agent nothing but a 4xx: the fuzz tests hold it to
that, and an unexpected exception is a 500 that names no internals and is logged in full.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from tentacle_manager.agent.scripts.service import ServiceStoppingError
from tentacle_manager.contracts import ApiError, ContractError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, error: str, problems: dict[str, str] | None = None, remedy: str | None = None
) -> web.Response:
    body = ApiError(error=error, problems=problems or {}, remedy=remedy)
    return web.Response(status=status, text=body.to_json(), content_type="application/json")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ContractError as error:
        return error_response(400, "The request does not match the contract.", error.problems)
    except ServiceStoppingError as error:
        return error_response(503, str(error), remedy="Retry once the agent has restarted.")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(error.status, error.reason, remedy=_remedy(error.status))
    except Exception:
        log.exception("Unexpected failure serving %s %s", request.method, request.path)
        return error_response(500, "The agent failed unexpectedly; see its log for details.")


def _remedy(status: int) -> str | None:
    return {
        404: "See the API routes in docs/api.md.",
        405: "See the API routes in docs/api.md for the method each route takes.",
        413: "Send script files through the workspace rather than in one huge request.",
    }.get(status)
