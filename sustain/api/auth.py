"""Bearer-token auth with three scopes, each including the one before: ``read``, ``write``, ``admin``.

With no tokens configured the service is open, which :class:`Settings` allows
only on a loopback address.
"""

from __future__ import annotations

from sustain.errors import Forbidden, Unauthorized
from sustain.settings import SCOPE_RANK, Scope, Settings


def check_token(settings: Settings, authorization: str | None, needed: Scope) -> None:
    if not settings.auth_enabled:
        return
    if not authorization:
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    scope = settings.scope_of(token.strip())
    if scope is None:
        raise Unauthorized("the bearer token is not valid")
    if SCOPE_RANK[scope] >= SCOPE_RANK[needed]:
        return
    if needed == "write":
        raise Forbidden("this token may only read; writing needs a write token")
    raise Forbidden(f"this needs an admin token (SUSTAIN_ADMIN_TOKENS); the token given may only {scope}")
