"""Security headers on every HTTP response (pure ASGI)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Public catalog reads carry no personal data and may be cached; everything else (a session,
# its token, articles, feedback, generated sub-topics) must not be.
_CACHEABLE_PATHS = ("/levels", "/main-topics", "/sub-topics/curated", "/health")
NO_STORE = (b"cache-control", b"no-store")


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (HSTS when the public URL is https)."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


def is_personal(scope: Scope) -> bool:
    """Whether the response may hold personal data (then no one may store it)."""
    if scope["method"] != "GET" or not scope["path"].startswith(_CACHEABLE_PATHS):
        return True
    return any(name == b"authorization" for name, _ in scope["headers"])


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        personal = is_personal(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self.headers if h[0] not in present]
                if personal:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
