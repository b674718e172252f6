"""JWT-shaped session tokens for the gateway: HS256-signed, expiring, never logged.

Clients treat ProjectX tokens as opaque strings, but some decode them, so they are real JWTs
(header.payload.signature, base64url) signed with a per-server random key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time

import orjson

DEFAULT_LIFETIME_S = 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks tokens; ``required_key`` (if set) is the only API key accepted."""

    def __init__(self, required_key: str | None = None, lifetime_s: int = DEFAULT_LIFETIME_S):
        self._secret = secrets.token_bytes(32)
        self.required_key = required_key
        self.lifetime_s = lifetime_s

    def accepts_key(self, api_key: object) -> bool:
        if not isinstance(api_key, str) or not api_key:  # a list or a number is no key
            return False
        if self.required_key is None:
            return True
        return hmac.compare_digest(api_key.encode(), self.required_key.encode())

    def issue(self, user: str) -> str:
        now = time.time()
        header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        # Rounded up: a token is good for at least its lifetime, never a truncated part of it.
        claims = {
            "sub": user or "rtcap",
            "iat": int(now),
            "exp": math.ceil(now + self.lifetime_s),
            "iss": "rtcap",
        }
        body = _b64(orjson.dumps(claims))
        signature = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"

    def check(self, token: str | None) -> str | None:
        """``None`` when valid, else the reason it is refused (safe to show; no token in it)."""
        if not token:
            return "missing access token: log in with POST /api/Auth/loginKey"
        parts = token.split(".")
        if len(parts) != 3:
            return "malformed access token"
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
        try:
            signature = _unb64(parts[2])
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, orjson.JSONDecodeError):
            return "malformed access token"
        if not hmac.compare_digest(signature, expected.digest()):
            return "invalid access token: it was not issued by this gateway"
        if claims.get("exp", 0) < time.time():
            return "expired access token: log in again"
        return None
