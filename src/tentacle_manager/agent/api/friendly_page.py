"""What a browser or a health check sees at https://host:port/ without a certificate.

Tentacle answers a plain GET with a page saying the agent is configured, and Docker health
checks rely on its 200; the security headers are Tentacle's.
"""

from __future__ import annotations

from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Strict-Transport-Security": "max-age=31536000",
}

PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Octopus Tentacle</title></head>
<body>
<h1>Octopus Tentacle configured successfully</h1>
<p>If you can view this page, your Tentacle is ready to accept deployment commands.</p>
<p>This page is displayed because you didn't provide a client certificate. Clients that
present a trusted certificate use the API under /api/.</p>
</body>
</html>
"""


async def friendly_page(request: web.Request) -> web.Response:
    return web.Response(
        text=PAGE, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
    )
