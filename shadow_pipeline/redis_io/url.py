"""Redis URLs: where they come from, whether redis-py can use them, and how they may be shown.

A Redis URL can carry a password, and redis-py keeps it in ``connection_kwargs``; every log line, error
message and piece of Dagster metadata therefore goes through :func:`redact` (one URL) or :func:`redact_text`
(a message that may quote URLs). A URL that cannot be used is refused by :func:`validate_url` with a reason
from a fixed list: urllib's and redis-py's own messages quote the pieces they choke on ("'S3cret' does not
appear to be an IPv4 or IPv6 address", a whole netloc that fails NFKC), and those pieces are often the
password, so their text never goes further than :func:`validate_url`.

How redis-py reads a URL (``redis.connection.parse_url``): ``urlparse`` ends the authority at the first ``/``,
``?`` or ``#``; the userinfo is what precedes the authority's last ``@`` (user, then ``:``, then the password,
percent-decoded); a bare token before ``@`` is the username; query parameters it does not know, ``password``
and ``username`` among them, become keyword arguments of the connection. A password holding an unencoded
``/``, ``?`` or ``#`` therefore moves its tail and the host out of the authority. Redaction errs on the side of
masking: everything between ``://`` and the last ``@`` is masked, wherever that ``@`` is (the host stays
visible only when every ``@`` after it is inside a ``?password=`` value, masked anyway), and an authority
without ``@`` that is not a host and port is masked whole (``redis://:S3cret``, the host forgotten).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import redis
from redis.connection import URL_QUERY_ARGUMENT_PARSERS

from shadow_pipeline.settings import REDIS_URL_ENV, redis_url

SUPPORTED_SCHEMES = ("redis", "rediss", "unix")
MASK = "***"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# Where a URL starts in a message: any scheme with "://", or a Redis scheme without it ("redis:user:pw@host").
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|(?<![A-Za-z0-9+.-])(?:rediss?|unix):", re.IGNORECASE)
_HOST_PORT = re.compile(r"(\[[0-9A-Za-z:.%]*\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(:[0-9]*)?")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Query parameters whose value is a secret: password (redis-py passes it to AUTH), ssl_password (the key's
# passphrase), and anything that looks like a credential.
_SECRET_PARAM = re.compile(r"pass|secret|token|auth|credential", re.IGNORECASE)
# A query value runs to the next "&name=" (redis-py's parse_qs splits on "&"; a "#" in a password is kept in it).
_QUERY_PARAM = re.compile(r"([?&])([^=&?#]*)=(.*?)(?=&[A-Za-z_][A-Za-z0-9_.-]*=|$)", re.DOTALL)
_SECRET_NAME_IN_QUERY = re.compile(r"[?&][^=&?#]*(pass|secret|token|auth|credential)[^=&?#]*=", re.IGNORECASE)
_NEXT_PARAM = re.compile(r"&[A-Za-z_][A-Za-z0-9_.-]*=")  # where a query value ends
_VALUE_END = re.compile(r".*?(?=&[A-Za-z_][A-Za-z0-9_.-]*=|$)", re.DOTALL)
_TRAILING = "'\"`,;:.!)}>"
_ENCODE = "percent-encode special characters in a password (urllib.parse.quote(password, safe=''))"


class RedisConfigError(ValueError):
    """A Redis URL or option that cannot work, explained without echoing any part of the URL."""


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***``: ``rediss://user:***@host:6380/0?password=***``.

    Handles userinfo with or without percent-encoding, passwords with unencoded ``@ : / ? # [ ]``, whitespace
    or any other character, a bare token before ``@`` (masked whole: redis-py sends it to AUTH), ``?password=``
    and other secret-looking query parameters (the other parameters are kept),
    ``unix://user:pass@/path.sock?db=0``, and any scheme.
    """
    match = _SCHEME.match(url)
    if match is None:  # not a URL ("alice:secret@host", "redis:secret@host"): masked by the same rules
        return _redact_rest("", url)
    return match.group(0) + _redact_rest(match.group(1).lower(), url[match.end() :])


def redact_text(message: str) -> str:
    """``message`` with every URL-looking substring (``scheme://...``, or ``redis:`` without the slashes)
    passed through :func:`redact`; use it on any exception text or log line that might quote a URL.

    A password may hold whitespace, so a URL is not taken to end at the first space: it runs to the last
    ``@`` of the message, then to the next whitespace; and when it ends in the value of a secret query
    parameter (``?password=``), the rest of that line is dropped, since the value may go on. A later,
    unrelated ``@`` masks more than needed, never less.
    """
    out: list[str] = []
    position = 0
    for match in _URL_START.finditer(message):
        if match.start() < position:  # inside a URL already redacted
            continue
        body = _url_in(message, match.start(), match.end())
        out += [message[position : match.start()], redact(body)]
        position = match.start() + len(body)
        secrets = list(_SECRET_NAME_IN_QUERY.finditer(body))
        if secrets and not _NEXT_PARAM.search(body, secrets[-1].end()):  # it ends in a secret value
            line_end = message.find("\n", position)
            position = len(message) if line_end < 0 else line_end
    out.append(message[position:])
    return "".join(out)


def _url_in(message: str, start: int, after_scheme: int) -> str:
    """The URL that starts at ``start`` (see :func:`redact_text`), without the punctuation or unbalanced ``]``
    that ends the sentence or bracket around it; only trailing ones after the last ``@`` are trimmed, since a
    password may hold anything."""
    end = max(message.rfind("@", after_scheme) + 1, after_scheme)
    while end < len(message) and not message[end].isspace():
        end += 1
    body = message[start:end]
    host_from = body.rfind("@") + 1 or after_scheme - start
    tail = body[host_from:].rstrip(_TRAILING)
    while tail.endswith("]") and tail.count("[") < tail.count("]"):
        tail = tail[:-1].rstrip(_TRAILING)
    return body[:host_from] + tail


def _authority_end(rest: str) -> int:
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(rest)


def _redact_rest(scheme: str, rest: str) -> str:
    """What follows ``scheme://``, redacted."""
    end = _authority_end(rest)
    last_at = rest.rfind("@")
    if last_at >= end and not _ats_are_masked_anyway(scheme, rest, end):
        # The password holds an unencoded / ? or #, or the '@' is in a query value: mask up to the last '@'.
        after = rest[last_at + 1 :]
        if _SECRET_NAME_IN_QUERY.search(rest[:last_at]):  # or that '@' is inside a ?password= value: mask its tail
            tail = after[_VALUE_END.match(after).end() :]  # type: ignore[union-attr]
            return f"{MASK}@{MASK}{_redact_query('?' + tail)[1:]}"  # the tail continues that query
        return f"{MASK}@{_redact_query(after)}"
    cut = rest.rfind("@", 0, end)
    if cut < 0:  # no userinfo: a host and port are shown, anything else may be a password without its host
        authority = rest[:end]
        return (authority if _HOST_PORT.fullmatch(authority) else MASK) + _redact_query(rest[end:])
    user, _, password = rest[:cut].partition(":")
    # "user:password@" shows the user; a bare "token@" (redis-py sends it to AUTH) or "token:@" is masked whole.
    shown = f"{user}:{MASK}" if password else MASK
    return shown + _redact_query(rest[cut:])


def _ats_are_masked_anyway(scheme: str, rest: str, end: int) -> bool:
    """Whether every '@' after the authority is in the value of a secret query parameter of a well-formed URL
    (``?password=a@b``, masked anyway). Any other '@' there may end a password holding an unencoded '/' or '?':
    ``redis://u:6379?client_name=secret@host``, ``unix:///secret@host`` (a socket path to redis-py)."""
    tail = rest[end:]
    query = tail.find("?")
    if query < 0 or "@" in tail[:query] or not _well_formed_with_at_after_authority(scheme, rest, end):
        return False
    return all(_SECRET_PARAM.search(pair.partition("=")[0]) for pair in tail[query + 1 :].split("&") if "@" in pair)


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


def validate_url(url: str, setting: str = "the Redis URL") -> str:
    """``url`` when redis-py reads it as written, else RedisConfigError naming ``setting`` and the problem.

    The error is raised here, outside the ``except`` that caught urllib's or redis-py's exception, so it
    carries neither their text nor them as its context (Dagster stores an exception's context in the run).
    """
    problem = _problem(url)
    if problem is not None:
        raise RedisConfigError(f"{setting} is not a valid Redis URL: {problem}")
    return url


def _problem(url: str) -> str | None:
    """Why redis-py cannot use ``url``, in words that quote no part of it; None when it can."""
    match = _SCHEME.match(url)
    if match is None or match.group(1) not in SUPPORTED_SCHEMES:  # redis-py wants the scheme in lower case
        return "it must start with redis://, rediss:// (TLS) or unix://"
    if any(unicodedata.category(c) == "Cc" for c in url):
        return f"it holds a control character such as a tab or line break, which urllib drops: {_ENCODE}"
    scheme, rest = match.group(1), url[match.end() :]
    end = _authority_end(rest)
    if rest.rfind("@") >= end and not _well_formed_with_at_after_authority(scheme, rest, end):
        return f"it has an '@' after its host part: a password holding '/', '?' or '#' must be encoded; {_ENCODE}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return _unsplittable(rest[:end])
    try:
        _ = parts.port
    except ValueError:
        return f"its port is not a number from 0 to 65535; {_ENCODE}"
    if scheme == "unix" and not parts.path:
        return "it names no socket path (unix:///run/redis.sock)"
    if scheme != "unix" and not parts.hostname:
        return "it names no host"
    return _unusable_by_redis_py(url)


def _unsplittable(authority: str) -> str:
    """Why urlsplit refused the URL, without its message (which quotes the offending part)."""
    if "[" in authority or "]" in authority:
        return f"a '[' or ']' outside an IPv6 host such as [::1]; {_ENCODE}"
    if unicodedata.normalize("NFKC", authority) != authority:
        return f"characters that Unicode NFKC turns into URL syntax (a fullwidth @ or :); {_ENCODE}"
    return f"urllib cannot split it into its parts; {_ENCODE}"


def _unusable_by_redis_py(url: str) -> str | None:
    """What redis-py objects to when it builds a connection from ``url`` (without connecting): a query value
    of the wrong type, a parameter the connection does not take, a bad TLS option. Its messages quote names
    and values from the URL, so only a known parameter's name is kept."""
    try:
        redis.ConnectionPool.from_url(url).make_connection()
    except ValueError as exc:  # "Invalid value for 'db' in connection URL."
        named = [name for name in URL_QUERY_ARGUMENT_PARSERS if f"'{name}'" in str(exc)]
        return f"the value of its {named[0]} parameter is invalid" if named else "redis-py cannot read it"
    except TypeError:  # "AbstractConnection.__init__() got an unexpected keyword argument ..."
        return "one of its query parameters is not an option redis-py knows"
    except redis.RedisError:  # "Invalid SSL Certificate Requirements Flag: ..."
        return "redis-py rejects the value of one of its query parameters"
    return None


def configured_url() -> str | None:
    """The URL from ``$REDIS_URL``, or None when the project should start its own server."""
    url = redis_url()
    return validate_url(url, REDIS_URL_ENV) if url else None
