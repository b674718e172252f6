"""Keep secrets out of everything written: URLs, sent frames, manifests and logs.

Redaction is by rule, applied to everything before it is written:

* a URL's password (``wss://user:pw@host`` → ``wss://user:REDACTED@host``), every query
  parameter whose name looks secret (below), and any path segment that looks like a key
  (32 or more letters and digits mixed, e.g. a Binance ``listenKey`` in ``/ws/<key>``);
* in JSON messages (what ``--send`` sends, what feeds send), every field whose name looks
  secret, at any depth, and every argument of an authentication message (a message whose
  ``op``/``action``/``method``/``event``/``type`` is ``auth``, ``login`` and the like);
* in free text (log lines, error messages), URLs as above and ``name=value`` pairs.

A name looks secret when, lower-cased and stripped of ``-``/``_``, it contains token, secret,
password, passwd, passphrase, signature, credential or apikey, ends in key (``listenKey``,
``x-api-key``), or is auth, authorization, sig, sign, pwd, pass or jwt. ``--redact NAME``
adds names (:func:`add_secret_names`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

REDACTED = "REDACTED"
_CONTAINS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "signature",
    "credential",
    "apikey",
)
_EXACT = {"auth", "authorization", "sig", "sign", "pwd", "pass", "jwt", "key"}
_AUTH_OPS = {"auth", "login", "authenticate", "authorize", "authorise", "signin", "logon"}
_OP_FIELDS = ("op", "action", "method", "event", "type")
_extra_names: set[str] = set()


def _normal(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.lower())


def add_secret_names(names: list[str]) -> None:
    """Treat these field / parameter names as secret too (``rtcap record --redact NAME``)."""
    _extra_names.update(_normal(n) for n in names if n.strip())


def is_secret(name: str) -> bool:
    normal = _normal(str(name))
    return (
        normal in _EXACT
        or normal in _extra_names
        or normal.endswith("key")
        or any(part in normal for part in _CONTAINS)
    )


_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
_KEY_LIKE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-=+.~]{32,}$")


def redact_url(url: str) -> str:
    """``wss://h/hubs/market?access_token=eyJ…`` → ``…?access_token=REDACTED``; the password
    of ``user:pw@`` and key-like path segments too; everything else stays as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text_pairs(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        user = REDACTED if _KEY_LIKE.match(user) else user
        netloc = f"{user}:{REDACTED}@{host}" if colon else f"{user}@{host}"
    path = "/".join(REDACTED if _KEY_LIKE.match(seg) else seg for seg in parts.path.split("/"))
    rebuilt = urlunsplit((parts.scheme, netloc, path, "", ""))
    if parts.query:
        rebuilt += "?" + parts.query
    if parts.fragment:
        rebuilt += "#" + parts.fragment
    return redact_text_pairs(rebuilt)


def redact_text_pairs(text: str) -> str:
    def replace(match: re.Match) -> str:
        separator, name, value = match.groups()
        return f"{separator}{name}={REDACTED if is_secret(name) else value}"

    return _QUERY_PAIR.sub(replace, text)


_URL_IN_TEXT = re.compile(r"\b(?:wss?|https?)://[^\s'\"<>]+")
_PAIR_IN_TEXT = re.compile(r"\b([A-Za-z][\w\-]*)([=:])\s*([^\s&,;'\"]+)")


def redact_text(text: str) -> str:
    """Free text (an error message, a log line) with URLs and ``name=value`` secrets redacted."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

    def pair(match: re.Match) -> str:
        name, sep, value = match.groups()
        if not is_secret(name) or value == REDACTED:
            return match.group(0)
        return f"{name}{sep}{'' if sep == '=' else ' '}{REDACTED}"

    return _PAIR_IN_TEXT.sub(pair, text)


def redact_json(payload: bytes) -> bytes:
    """A JSON message with secrets replaced; non-JSON payloads get :func:`redact_text`."""
    try:
        data = orjson.loads(payload.rstrip(b"\x1e"))
    except orjson.JSONDecodeError:
        try:
            return redact_text(payload.decode()).encode()
        except UnicodeDecodeError:
            return payload
    cleaned = _scrub(data)
    if cleaned == data:
        return payload
    encoded = orjson.dumps(cleaned)
    return encoded + b"\x1e" if payload.endswith(b"\x1e") else encoded


def redact_message(message: str) -> str:
    """A message to send, as it may be written down."""
    return redact_json(message.encode()).decode("utf-8", "replace")


def _is_auth_message(value: dict) -> bool:
    return any(
        isinstance(value.get(name), str) and _normal(value[name]) in _AUTH_OPS
        for name in _OP_FIELDS
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        if _is_auth_message(value):
            return {
                k: v if k in _OP_FIELDS or k in ("id", "req_id", "reqid") else REDACTED
                for k, v in value.items()
            }
        return {k: REDACTED if is_secret(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and _URL_IN_TEXT.search(value):
        return redact_text(value)
    return value
