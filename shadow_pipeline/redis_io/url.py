"""Redis URLs: where they come from and how they may be shown.

A Redis URL can carry a password, and redis-py keeps it in ``connection_kwargs``; every log line, error
message and piece of Dagster metadata therefore goes through :func:`redact` (one URL) or :func:`redact_text`
(a message that may quote URLs).

How redis-py reads a URL (``redis.connection.parse_url``): ``urlparse`` ends the authority at the first ``/``,
``?`` or ``#``; the userinfo is what precedes the authority's last ``@`` (user, then ``:``, then the password,
percent-decoded); a bare token before ``@`` is the username; query parameters it does not know, ``password``
and ``username`` among them, become keyword arguments of the connection. A password holding an unencoded
``/``, ``?`` or ``#`` therefore moves its tail and the host out of the authority. Redaction follows the same
rule and errs on the side of masking: when an ``@`` comes after the authority and is not inside a query value
of a well-formed URL, everything between ``://`` and the last ``@`` is masked (and :func:`validate_url`
rejects such a URL, since redis-py would connect to the wrong host).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from shadow_pipeline.settings import redis_url

SUPPORTED_SCHEMES = ("redis", "rediss", "unix")
MASK = "***"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(:[0-9]*)?")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Query parameters whose value is a secret: password (redis-py passes it to AUTH), ssl_password (the key's
# passphrase), and anything that looks like a credential.
_SECRET_PARAM = re.compile(r"pass|secret|token|auth|credential", re.IGNORECASE)
# A query value runs to the next "&name=" (redis-py's parse_qs splits on "&"; a "#" in a password is kept in it).
_QUERY_PARAM = re.compile(r"([?&])([^=&?#]*)=(.*?)(?=&[A-Za-z_][A-Za-z0-9_.-]*=|$)", re.DOTALL)
_SECRET_NAME_IN_QUERY = re.compile(r"[?&][^=&?#]*(pass|secret|token|auth|credential)[^=&?#]*=", re.IGNORECASE)
_VALUE_END = re.compile(r".*?(?=&[A-Za-z_][A-Za-z0-9_.-]*=|$)", re.DOTALL)
_TRAILING = "'\"`,;:.!)}>"


class RedisConfigError(ValueError):
    """A Redis URL or option that cannot work, explained without echoing a password."""


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***``: ``rediss://user:***@host:6380/0?password=***``.

    Handles userinfo with or without percent-encoding, passwords with unencoded ``@ : / ? #``, a bare token
    before ``@`` (masked whole: redis-py sends it to AUTH), ``?password=`` and other secret-looking query
    parameters (the other parameters are kept), ``unix://user:pass@/path.sock?db=0``, and any scheme.
    """
    match = _SCHEME.match(url)
    if match is None:  # not a URL: a bare "secret@host" is still masked
        at = url.rfind("@")
        return MASK + url[at:] if at >= 0 else url
    return match.group(0) + _redact_rest(match.group(1).lower(), url[match.end() :])


def redact_text(message: str) -> str:
    """``message`` with every URL-looking substring (``scheme://...`` up to whitespace) passed through
    :func:`redact`; use it on any exception text or log line that might quote a URL."""
    if "://" not in message:
        return message
    out: list[str] = []
    position = 0
    for match in _SCHEME.finditer(message):
        if match.start() < position:  # inside a URL already redacted
            continue
        end = match.end()
        while end < len(message) and not message[end].isspace():
            end += 1
        token = message[match.start() : end]
        body = token.rstrip(_TRAILING)
        if body.count("[") < body.count("]"):
            body = body[: body.rfind("]")]
        out += [message[position : match.start()], redact(body), token[len(body) :]]
        position = end
    out.append(message[position:])
    return "".join(out)


def _authority_end(rest: str) -> int:
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(rest)


def _redact_rest(scheme: str, rest: str) -> str:
    """What follows ``scheme://``, redacted."""
    end = _authority_end(rest)
    last_at = rest.rfind("@")
    if last_at >= end and not _well_formed_with_at_after_authority(scheme, rest, end):
        # The password holds an unencoded / ? or #: mask all of it, up to the last '@' (the host follows).
        after = rest[last_at + 1 :]
        if _SECRET_NAME_IN_QUERY.search(rest[:last_at]):  # or that '@' is inside a ?password= value: mask its tail
            after = MASK + after[_VALUE_END.match(after).end() :]  # type: ignore[union-attr]
        return f"{MASK}@{_redact_query(after)}"
    cut = rest.rfind("@", 0, end)
    if cut < 0:
        return _redact_query(rest)
    user, colon, _ = rest[:cut].partition(":")
    # "user:password@" shows the user; a bare "token@" is masked whole (redis-py sends it to AUTH).
    shown = f"{user}:{MASK}" if colon else MASK
    return shown + _redact_query(rest[cut:])


def _well_formed_with_at_after_authority(scheme: str, rest: str, end: int) -> bool:
    """Whether every '@' after the authority is ordinary data of a well-formed URL: in a query value
    (``?client_name=svc@prod``), or in the socket path of ``unix:///run/redis@main.sock``."""
    authority = rest[:end]
    hostport = authority[authority.rfind("@") + 1 :]
    if _HOST_PORT.fullmatch(hostport) is None:
        return False
    tail = rest[end:]
    fragment = tail.find("#")
    if fragment >= 0 and "@" in tail[fragment:]:
        return False  # redis-py drops a fragment: an '@' in one is a password's tail
    query = tail.find("?")
    path = tail if query < 0 else tail[:query]
    if "@" in path and not (scheme == "unix" and not authority):
        return False
    if query >= 0:
        for pair in tail[query + 1 :].split("&"):
            name, equals, _ = pair.partition("=")
            if "@" in pair and not (equals and _PARAM_NAME.fullmatch(name) and "@" not in name):
                return False
    return True


def _redact_query(tail: str) -> str:
    """Mask the values of secret query parameters (``?password=...``); keep the others."""
    query = tail.find("?")
    if query < 0:
        return tail

    def mask(match: re.Match[str]) -> str:
        sep, name, _ = match.groups()
        return f"{sep}{name}={MASK}" if _SECRET_PARAM.search(name) else match.group(0)

    return tail[:query] + _QUERY_PARAM.sub(mask, tail[query:])


def validate_url(url: str) -> str:
    """Reject URLs that redis-py would misread, with a message that is safe to print."""
    match = _SCHEME.match(url)
    scheme = match.group(1) if match else urlsplit(url).scheme
    if match is None or scheme not in SUPPORTED_SCHEMES:  # redis-py wants the scheme in lower case
        raise RedisConfigError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)}: use redis://, rediss:// (TLS) or unix://"
        )
    rest = url[match.end() :]
    end = _authority_end(rest)
    if rest.rfind("@") >= end and not _well_formed_with_at_after_authority(scheme, rest, end):
        raise RedisConfigError(
            f"Redis URL {redact(url)} has an '@' after its host part: a password holding '/', '?' or '#' must "
            "be percent-encoded (urllib.parse.quote(password, safe=''))"
        )
    if scheme != "unix":
        parts = urlsplit(url)
        try:
            _ = parts.port
        except ValueError as exc:
            raise RedisConfigError(
                f"bad port in Redis URL {redact(url)} (percent-encode special characters in a password)"
            ) from exc
        if not parts.hostname:
            raise RedisConfigError(f"no host in Redis URL {redact(url)}")
    return url


def configured_url() -> str | None:
    """The URL from ``$REDIS_URL``, or None when the project should start its own server."""
    url = redis_url()
    return validate_url(url) if url else None
