"""The browse server's fences. It serves one person on this machine, so it trusts nothing else:

- loopback peers only (the server binds 127.0.0.1; this checks the peer again);
- the Host header must be 127.0.0.1:PORT or localhost:PORT: a page on another site whose
  name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and is refused;
- a write (POST) must carry the token embedded in the page (a secret made at start, never
  in a cookie) and, when the browser says where it comes from (Origin, Sec-Fetch-Site),
  come from this origin: another site's form cannot label;
- every response forbids inline script and framing (Content-Security-Policy), so a stored
  text that escaped the templates' autoescape still could not run.
"""
from __future__ import annotations

import hmac
import secrets

from starlette.responses import PlainTextResponse

LOOPBACK = ("127.0.0.1", "::1")
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make the form post say Origin: null
    (b"x-frame-options", b"DENY"),
]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def same_origin(headers, host: str) -> bool:
    """False when the browser says the request comes from another site."""
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return False
    return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


class Guard:
    """ASGI middleware: refuses other peers and other Host headers; adds HEADERS to every response."""

    def __init__(self, app, port: int, peers: tuple[str, ...] = LOOPBACK):
        self.app = app
        self.port = port
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.peers = peers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        peer = (scope.get("client") or ("",))[0]
        if peer not in self.peers:
            return await PlainTextResponse("loopback connections only", 403)(scope, receive, send)
        if host not in self.hosts:
            return await PlainTextResponse(f"unexpected Host header {host!r}: open http://127.0.0.1:"
                                           f"{self.port}/", 421)(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        return await self.app(scope, receive, with_headers)
