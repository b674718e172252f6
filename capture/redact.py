"""Keep secrets out of everything written: URLs, sent frames, manifests and logs."""

from __future__ import annotations

import re

import orjson

SECRET_NAMES = frozenset(
    {
        "access_token",
        "accesstoken",
        "token",
        "apikey",
        "api_key",
        "key",
        "secret",
        "signature",
        "password",
        "passphrase",
        "auth",
        "authorization",
    }
)
REDACTED = "REDACTED"


def is_secret(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_NAMES or name.lower() in SECRET_NAMES


_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")


def redact_url(url: str) -> str:
    """``wss://h/hubs/market?access_token=eyJ…`` → ``…?access_token=REDACTED``; everything else
    in the URL stays exactly as written."""

    def replace(match: re.Match) -> str:
        separator, name, value = match.groups()
        return f"{separator}{name}={REDACTED if is_secret(name) else value}"

    return _QUERY_PAIR.sub(replace, url)


def redact_json(payload: bytes) -> bytes:
    """A JSON message with secret-named fields' values replaced; non-JSON passes through."""
    try:
        data = orjson.loads(payload.rstrip(b"\x1e"))
    except orjson.JSONDecodeError:
        return _redact_text(payload)
    if not _contains_secret(data):
        return payload
    cleaned = orjson.dumps(_scrub(data))
    return cleaned + b"\x1e" if payload.endswith(b"\x1e") else cleaned


def _contains_secret(value) -> bool:
    if isinstance(value, dict):
        return any(is_secret(str(k)) or _contains_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _scrub(value):
    if isinstance(value, dict):
        return {k: REDACTED if is_secret(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


_TOKEN_IN_TEXT = re.compile(rb"(access_token=)[^&\s\"']+", re.IGNORECASE)


def _redact_text(payload: bytes) -> bytes:
    return _TOKEN_IN_TEXT.sub(rb"\1" + REDACTED.encode(), payload)
