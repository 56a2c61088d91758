"""Who is calling: the role of the certificate behind a request, and refusing the rest.

Every API route needs a trusted certificate; the admin routes (changing the log level,
retrying the quarantine) need the instance's local admin certificate. A refusal is logged
with the peer and the thumbprints, as a refused handshake is.
"""

from __future__ import annotations

import logging

from aiohttp import web

from tentacle_manager.agent.api.errors import Handler, error_response
from tentacle_manager.agent.api.trust import Role, TrustList
from tentacle_manager.instances.certificates import thumbprint_of_der

log = logging.getLogger(__name__)

TRUST = web.AppKey("trust", TrustList)
ADMIN_ONLY = "admin_only"


def presented_der(request: web.Request) -> bytes | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object else None


@web.middleware
async def require_trusted_caller(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    trust = request.app[TRUST]
    der = presented_der(request)
    role = trust.role_of(der)
    if role is None:
        log.warning(
            "Refused %s %s from %s: %s. Trusted: %s",
            request.method,
            request.path,
            request.remote,
            "no client certificate was presented"
            if der is None
            else f"certificate {thumbprint_of_der(der)} is not trusted",
            ", ".join(trust.thumbprints) or "none",
        )
        return error_response(
            401,
            "A trusted client certificate is required.",
            remedy="Trust this client's certificate with `tentacle configure --trust`.",
        )
    route = request.match_info.route
    if getattr(route.handler, ADMIN_ONLY, False) and role is not Role.ADMIN:
        return error_response(
            403,
            "Only the instance's local admin certificate may do this.",
            remedy="Run the command on the agent's machine as an administrator.",
        )
    return await handler(request)


def admin_only(handler: Handler) -> Handler:
    setattr(handler, ADMIN_ONLY, True)
    return handler
