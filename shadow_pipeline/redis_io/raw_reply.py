"""One command's reply as raw RESP bytes, for callers that decode it themselves (see ``ingest/entry_scan.py``).

Why: redis-py (with hiredis) turns a reply into one Python object per element; an XREADGROUP batch of ticks is
some 25 objects per tick, which costs more than everything the consumer then does with them. The connection
comes from the client's own pool, so AUTH, TLS, the database and timeouts are exactly the client's; only the
reply is read from the socket as bytes. A reply is complete when :func:`skim` has walked its whole framing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np
import redis
from redis._parsers import BaseParser
from redis.connection import ConnectionInterface

_MAX_DEPTH = 16
_FIRST_READ = 1 << 20
_PUSH = ord(">")


@numba.njit(cache=True)
def header(buf: np.ndarray, pos: int, n: int) -> tuple[int, int]:
    """The integer after the type byte at ``pos`` (a length or a count), and where the next token starts
    (-1: ``buf[:n]`` ends before the line does)."""
    i = pos + 1
    negative = i < n and buf[i] == 45  # '-'
    if negative:
        i += 1
    value = 0
    while i < n and buf[i] != 13:  # '\r'
        value = value * 10 + (buf[i] - 48)
        i += 1
    if i + 1 >= n:
        return 0, -1
    return (-value if negative else value), i + 2


@numba.njit(cache=True)
def _line_end(buf: np.ndarray, pos: int, n: int) -> int:
    i = pos
    while i + 1 < n and not (buf[i] == 13 and buf[i + 1] == 10):
        i += 1
    return i + 2 if i + 1 < n else -1


@numba.njit(cache=True, nogil=True)
def skim(buf: np.ndarray, n: int, state: np.ndarray) -> bool:
    """Walk the RESP framing of ``buf[:n]`` from where the last call stopped; True once one reply is complete.

    ``state`` holds the walk between calls, so each byte is looked at about once however the reply arrives:
    ``[position, depth, values still expected at depth 0, at depth 1, ...]``; start with ``[0, 0, 1, 0 ...]``.
    """
    pos, depth = state[0], state[1]
    while depth >= 0:
        if state[2 + depth] == 0:
            depth -= 1
            continue
        if pos >= n:
            break
        kind = buf[pos]
        if kind == 42 or kind == 37 or kind == 126 or kind == 62:  # '*' '%' '~' '>' aggregates
            count, after = header(buf, pos, n)
            if after < 0:
                break
            state[2 + depth] -= 1
            pos = after
            if count > 0:
                if depth + 1 >= _MAX_DEPTH:
                    raise ValueError("RESP reply nested too deep")  # no command this project sends nests so deep
                depth += 1
                state[2 + depth] = count * 2 if kind == 37 else count
        elif kind == 36 or kind == 61 or kind == 33:  # '$' '=' '!' length-prefixed
            length, after = header(buf, pos, n)
            if after < 0 or (length >= 0 and after + length + 2 > n):
                break
            state[2 + depth] -= 1
            pos = after + length + 2 if length >= 0 else after
        else:  # '+' '-' ':' '_' ',' '#' '(' one line
            after = _line_end(buf, pos, n)
            if after < 0:
                break
            state[2 + depth] -= 1
            pos = after
    state[0], state[1] = pos, depth
    return depth < 0


@numba.njit(cache=True)
def _fresh_state(pos: int) -> np.ndarray:
    state = np.zeros(2 + _MAX_DEPTH, dtype=np.int64)
    state[0], state[2] = pos, 1  # one value expected at the top
    return state


@numba.njit(cache=True)
def value_end(buf: np.ndarray, pos: int) -> int:
    """Where the (complete) RESP value that starts at ``pos`` ends, whatever its type and nesting."""
    state = _fresh_state(pos)
    skim(buf, len(buf), state)
    return state[0]


def read_raw(client: redis.Redis, *command: Any) -> np.ndarray:
    """Send ``command`` on a connection of ``client``'s pool and return its reply's bytes (uint8, exact length).

    An error reply is returned as bytes too (it starts with ``-``; :func:`error_of` makes it redis-py's exception).
    RESP3 push messages (client tracking, maintenance notifications) that arrive before the reply are skipped. A
    socket error drops the connection (it may hold half a reply) and is raised as redis-py's ConnectionError or
    TimeoutError.
    """
    pool = client.connection_pool
    connection = pool.get_connection()  # redis-py >= 5.3: no command name
    try:
        send_raw(connection, *command)
        return receive_raw(connection)
    finally:
        pool.release(connection)


def read_raw_strings(client: redis.Redis, command: Sequence[str], members: Sequence[str] = ()) -> np.ndarray:
    """:func:`read_raw` for a command of many text arguments (e.g. XACK of a batch's entry ids), packed here:
    redis-py's generic packing costs six times as much per argument. ``members`` follow ``command`` in an order
    of the packing's own choosing (see :func:`pack_strings`): for arguments that are a set, as XACK's ids are."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        with _dropped_on_error(connection):
            connection.send_packed_command([pack_strings(command, members)])
        return receive_raw(connection)
    finally:
        pool.release(connection)


def pack_strings(command: Sequence[str], members: Sequence[str] = ()) -> bytes:
    """The RESP request for ``command`` then ``members`` (lengths in bytes: UTF-8), the members grouped by
    length: the members of one length are joined in one step around their shared ``$<length>`` separator,
    half the cost of formatting each (a landing's XACK packs 20,000 entry ids, most of one or two lengths)."""
    by_length: dict[int, list[str]] = {}
    for member in members:
        by_length.setdefault(len(member), []).append(member)
    text = "".join(
        [
            *[f"${len(arg)}\r\n{arg}\r\n" for arg in command],
            *[f"${n}\r\n" + f"\r\n${n}\r\n".join(group) + "\r\n" for n, group in by_length.items()],
        ]
    )
    count = len(command) + len(members)
    if text.isascii():  # lengths in characters are lengths in bytes
        return f"*{count}\r\n{text}".encode()
    encoded = [arg.encode() for arg in [*command, *members]]
    return b"*%d\r\n%b" % (count, b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in encoded]))


def send_raw(connection: ConnectionInterface, *command: Any) -> None:
    """Send ``command`` without waiting for its reply (a caller that pipelines: :func:`receive_raw` takes it)."""
    with _dropped_on_error(connection):
        connection.send_command(*command)


def receive_raw(connection: ConnectionInterface) -> np.ndarray:
    """The raw bytes of the next reply on ``connection`` (see :func:`read_raw`)."""
    with _dropped_on_error(connection):
        sock = getattr(connection, "_sock", None)
        if sock is None:
            raise redis.exceptions.ConnectionError("the Redis connection closed before the reply")
        return _receive(sock)


@contextlib.contextmanager
def _dropped_on_error(connection: ConnectionInterface) -> Iterator[None]:
    """A connection that failed mid-command may hold half a reply: drop it, and raise redis-py's error."""
    try:
        yield
    except TimeoutError:
        connection.disconnect()
        raise redis.exceptions.TimeoutError("timeout reading a reply from Redis") from None
    except OSError as exc:
        connection.disconnect()
        raise redis.exceptions.ConnectionError(f"error reading a reply from Redis: {exc}") from None
    except BaseException:
        connection.disconnect()
        raise


def error_of(reply: np.ndarray) -> redis.exceptions.RedisError:
    """An error reply (``-CODE message``) as the exception redis-py raises for it (e.g. LOADING: BusyLoadingError,
    a ConnectionError that callers retry)."""
    return BaseParser.parse_error(bytes(reply[1:]).decode(errors="replace").rstrip("\r\n"))


def _receive(sock: socket.socket) -> np.ndarray:
    buf = np.empty(_FIRST_READ, dtype=np.uint8)
    state = _fresh_state(0)
    n = 0
    while True:
        if n == len(buf):
            grown = np.empty(len(buf) * 2, dtype=np.uint8)
            grown[:n] = buf[:n]
            buf = grown
        got = sock.recv_into(buf.data[n:])
        if got == 0:
            raise OSError("Redis closed the connection in the middle of a reply")
        n += got
        while n and skim(buf, n, state):
            end = int(state[0])
            if buf[0] != _PUSH:
                if end != n:
                    raise OSError(f"Redis sent {n - end} bytes after the reply")
                return buf[:n]
            buf[: n - end] = buf[end:n]  # a push message, not the reply: drop it and go on
            n -= end
            state = _fresh_state(0)
