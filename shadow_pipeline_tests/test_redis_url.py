"""Redis URLs: a password never shows, in any shape redis-py accepts, alone or quoted in a longer message."""

import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import parse_url

from shadow_pipeline.redis_io.url import RedisConfigError, redact, redact_text, validate_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://alice:s3cret@host:6379/2", "redis://alice:***@host:6379/2"),
        (
            "rediss://:s3cret@host:6380/0?ssl_ca_certs=/ca.crt",
            "rediss://:***@host:6380/0?ssl_ca_certs=/ca.crt",
        ),
        ("redis://s3cret@host:6379", "redis://***@host:6379"),
        (
            "redis://host:6379/0?db=1&password=s3cret&socket_timeout=5",
            "redis://host:6379/0?db=1&password=***&socket_timeout=5",
        ),
        ("redis://u:s3c@ret@host:6379/0", "redis://u:***@host:6379/0"),
        ("redis://u:s3c/ret@host:6379/0", "redis://***@host:6379/0"),
        ("unix://user:s3cret@/run/redis.sock?db=0", "unix://user:***@/run/redis.sock?db=0"),
        # Valid, but "unix:///secret@host" reads the same: a password that starts with '/'.
        ("unix:///run/redis@main.sock?db=0", "unix://***@main.sock?db=0"),
        # Valid, but "redis://u:6379?client_name=x@host" could as well be a password with an unencoded '?'.
        ("redis://host:6379/0?client_name=shadow@prod", "redis://***@prod"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3c" not in redact(url) and "ret@" not in redact(url)


# (URL, pieces of the secret that must never show, parts that must survive). The secrets are unusual strings so
# that a piece of one cannot occur by chance in a host or parameter.
SHAPES = [
    pytest.param("redis://alice:Kq9Zr4@db.example:6379/2", ["Kq9Zr4"], ["alice", "db.example:6379/2"], id="plain"),
    pytest.param(
        "redis://alice:Kq9%40%3A%2F%3F%23Zr4@db.example:6379/2",
        ["Kq9", "Zr4", "%40"],
        ["alice", "db.example:6379/2"],
        id="percent-encoded",
    ),
    pytest.param("redis://alice:Kq9@Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["alice", "db.example:6379/2"], id="at"),
    pytest.param("redis://alice:Kq9:Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["alice", "db.example:6379/2"], id="colon"),
    pytest.param("redis://alice:Kq9/Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["db.example:6379/2"], id="slash"),
    pytest.param("redis://alice:Kq9?Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["db.example:6379/2"], id="question"),
    pytest.param("redis://alice:Kq9#Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["db.example:6379/2"], id="hash"),
    pytest.param("redis://alice:Kq9@:/?#Zr4@db.example:6379/2", ["Kq9", "Zr4"], ["db.example:6379/2"], id="all"),
    pytest.param("redis://:4417/Zr4@db.example:6379/2", ["4417", "Zr4"], ["db.example:6379/2"], id="digits-slash"),
    pytest.param("redis://:4417#Zr4@db.example:6379/2", ["4417", "Zr4"], ["db.example:6379/2"], id="digits-hash"),
    pytest.param("redis://:4417?Zr4@db.example:6379/2", ["4417", "Zr4"], ["db.example:6379/2"], id="digits-query"),
    pytest.param("redis://:Kq9Zr4@db.example:6379/0", ["Kq9Zr4"], ["db.example:6379/0"], id="no-user"),
    pytest.param("redis://Kq9Zr4@db.example:6379/0", ["Kq9Zr4"], ["db.example:6379/0"], id="bare-token"),
    pytest.param("redis://alice:@db.example:6379/0", ["alice"], ["db.example:6379/0"], id="empty-password"),
    pytest.param(
        "redis://db.example:6379/0?password=Kq9Zr4&socket_timeout=5",
        ["Kq9Zr4"],
        ["db.example:6379/0", "socket_timeout=5"],
        id="query-password",
    ),
    pytest.param(
        "redis://db.example:6379/0?username=alice&password=Kq9Zr4&db=3",
        ["Kq9Zr4"],
        ["db.example:6379/0", "username=alice", "db=3"],
        id="query-username-password",
    ),
    pytest.param(
        "redis://db.example:6379/0?password=Kq9@Zr4&db=3",
        ["Kq9", "Zr4"],
        ["db.example:6379/0", "db=3"],
        id="query-password-at",
    ),
    pytest.param(
        "redis://db.example:6379/0?password=Kq9&Zr4&db=3",
        ["Kq9", "Zr4"],
        ["db.example:6379/0", "db=3"],
        id="query-password-ampersand",
    ),
    pytest.param(
        "redis://db.example:6379/0?password=Kq9#Zr4&db=3",
        ["Kq9", "Zr4"],
        ["db.example:6379/0"],
        id="query-password-hash",
    ),
    pytest.param(
        "redis://db.example:6379/0?password=Kq9#Zr4&client_name=shadow@prod", ["Kq9", "Zr4"], [], id="query-hash-at"
    ),
    pytest.param(
        "rediss://svc:Kq9Zr4@cache.internal:6380/1?ssl_ca_certs=/etc/ca.crt&ssl_password=Wm5Yt8",
        ["Kq9Zr4", "Wm5Yt8"],
        ["svc", "cache.internal:6380/1", "ssl_ca_certs=/etc/ca.crt"],
        id="rediss-ssl-password",
    ),
    pytest.param(
        "unix://alice:Kq9Zr4@/run/redis/redis.sock?db=0",
        ["Kq9Zr4"],
        ["alice", "/run/redis/redis.sock", "db=0"],
        id="unix",
    ),
    pytest.param(
        "unix://alice:Kq9/Zr4@/run/redis.sock?db=0", ["Kq9", "Zr4"], ["/run/redis.sock", "db=0"], id="unix-slash"
    ),
    pytest.param(
        "unix:///run/redis.sock?db=0&password=Kq9Zr4", ["Kq9Zr4"], ["/run/redis.sock", "db=0"], id="unix-query-password"
    ),
    pytest.param("redis://alice:Kq9Zr4@[::1]:6379/0", ["Kq9Zr4"], ["alice", "[::1]:6379/0"], id="ipv6"),
]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


@pytest.mark.parametrize(("url", "secrets", "kept"), SHAPES)
def test_redact_masks_every_shape_and_keeps_the_rest(url: str, secrets: list[str], kept: list[str]) -> None:
    shown = redact(url)
    assert not _leaks(shown, secrets), shown
    assert [part for part in kept if part not in shown] == [], shown
    assert "***" in shown or not secrets
    # What redis-py itself would send to AUTH never shows either, whatever it made of the URL.
    try:
        parsed = parse_url(url)
    except ValueError:  # redis-py cannot read it at all ("Port could not be cast to integer value as 'Kq9'")
        return
    for name in ("password", "ssl_password"):
        if parsed.get(name):
            assert parsed[name] not in shown, (name, shown)


@pytest.mark.parametrize(("url", "secrets", "kept"), SHAPES)
def test_validate_url_errors_never_show_the_password(url: str, secrets: list[str], kept: list[str]) -> None:
    rest = url.partition("://")[2]
    variants = [url, f"http://{rest}", url.replace(":6379", ":63x9").replace(":6380", ":63x0")]
    for variant in variants:
        try:
            validate_url(variant)
        except RedisConfigError as exc:
            assert not _leaks(str(exc), secrets), str(exc)
    with pytest.raises(RedisConfigError):
        validate_url(variants[1])


@pytest.mark.parametrize(("url", "secrets", "kept"), SHAPES)
def test_redact_text_masks_urls_quoted_in_messages(url: str, secrets: list[str], kept: list[str]) -> None:
    messages = [
        f"cannot reach Redis at {url}: Connection refused",
        f"Error in config {{'url': '{url}', 'socket_timeout': 5.0}}",
        f'{{"url":"{url}"}}',
        f"resource redis ({url}).",
        f"first {url} then again {url}\nsecond line <{url}>",
    ]
    for message in messages:
        shown = redact_text(message)
        assert not _leaks(shown, secrets), shown
    shown = redact_text(messages[0])
    if re.search(r"[?&][a-z_]*password=[^&]*$", url):  # a password value may run on past the space: line dropped
        assert shown == f"cannot reach Redis at {redact(url)}", shown
    else:
        assert shown == f"cannot reach Redis at {redact(url)}: Connection refused", shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://alice:Kq9#Zr4@db.example:6379/0",
        "redis://alice:Kq9/Zr4@db.example:6379/0",
        "redis://alice:Kq9?Zr4@db.example:6379/0",
        "redis://:4417/Zr4@db.example:6379/0",
        "redis://:Kq9#Zr4@db.example:notaport/0",
    ],
)
def test_a_password_that_moves_the_host_is_rejected_without_echoing_it(url: str) -> None:
    """redis-py would connect to 'alice' (or fail on the port 'Kq9'): the URL is refused, with the remedy."""
    with pytest.raises(RedisConfigError) as info:
        validate_url(url)
    assert "Kq9" not in str(info.value) and "Zr4" not in str(info.value) and "4417" not in str(info.value)
    assert "percent-encode" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://alice:Kq9%23Zr4@db.example:6379/0",
        "redis://db.example:6379/0?client_name=shadow@prod",
        "unix:///run/redis@main.sock?db=0",
        "rediss://:pw@[::1]:6380/0?ssl_ca_certs=/etc/ca.crt",
    ],
)
def test_well_formed_urls_pass_validation(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize("url", ["http://host:6379", "redis://:pw@host:notaport/0", "redis:///0", "REDIS://:pw@host/0"])
def test_bad_urls_are_rejected_without_the_password(url: str) -> None:
    with pytest.raises(RedisConfigError) as info:
        validate_url(url)
    assert "pw" not in str(info.value)


def test_redact_text_leaves_other_text_alone() -> None:
    message = "Error 111 connecting to 127.0.0.1:6379. Connection refused. (see https://redis.io/docs)"
    assert redact_text(message) == message
    assert (
        redact_text("mail bob@example.com about redis://:pw@h:1/0") == "mail bob@example.com about redis://:***@h:1/0"
    )


# Two markers inside every generated password: pieces that cannot occur by chance anywhere else, so that any
# leak of its start, middle or end shows. Around them, the characters that URLs, urllib and redis-py treat
# specially, whitespace, and Unicode that NFKC turns into URL syntax.
MARKERS = ("Qz7Mk", "Vx4Wj")
HOSTILE = " \t\u3000\xa0[]@:/#?%&=+'\"<>()\\\uff20\uff1a\uff0f\uff03\uff1fé漢aZ09"
HOSTS = ["127.0.0.1", "db.example", "[::1]", "[fe80::1%25eth0]", "[::1", "::1]", "[zz]", "", "hóst"]


@st.composite
def hostile_urls(draw: st.DrawFn) -> tuple[str, str]:
    """A URL of any shape whose password holds both markers: userinfo, bare token or ?password=, any scheme,
    hosts with and without brackets, good and bad ports, empty parts, the password encoded or not. Returned
    with its scheme, "" for none."""
    pieces = [draw(st.text(alphabet=HOSTILE, max_size=6)) for _ in range(3)]
    password = pieces[0] + MARKERS[0] + pieces[1] + MARKERS[1] + pieces[2]
    if draw(st.booleans()):
        password = quote(password, safe="")
    scheme = draw(
        st.sampled_from(
            ["redis://", "rediss://", "unix://", "REDIS://", "http://", "redis:", "redis:/", "", "\uff52edis://"]
        )
    )
    host = draw(st.sampled_from(HOSTS)) + draw(st.sampled_from(["", ":6379", ":", ":99999", ":-1", ":63x9"]))
    path = draw(st.sampled_from(["", "/", "/0", "/x", "/run/redis.sock"]))
    query = draw(st.sampled_from(["", "?db=1", "?db=x", "?socket_timeout=5", "?client_name=a@b", "?foo=bar", "#f"]))
    form = draw(st.sampled_from(["user", "no-user", "bare", "query"]))
    if form == "query":  # an unencoded '&' ends the value for redis-py too: what follows is not the password
        url = f"{scheme}{host}{path}?db=1&password={password.replace('&', '')}{query.replace('?', '&')}"
        return scheme, url
    # A bare token with a ':' is a user and a password to redis-py: the user is shown, like alice.
    userinfo = {"user": f"alice:{password}", "no-user": f":{password}", "bare": password.replace(":", "")}[form]
    return scheme, f"{scheme}{userinfo}@{host}{path}{query}"


def _shows_a_marker(text: str) -> bool:
    return any(marker in text for marker in MARKERS)


@settings(max_examples=400, deadline=None)
@given(hostile_urls())
def test_fuzz_no_password_in_redaction_or_any_parser_error(shape: tuple[str, str]) -> None:
    """Whatever the shape: redact and redact_text hide the password, and validate_url either accepts a URL that
    redis-py reads, or raises one RedisConfigError that names the setting and quotes no part of the URL (and
    carries no urllib or redis-py exception as its cause or context, which Dagster would store).

    redact_text finds URLs by their scheme; "alice:pw@host" alone in a message is not taken for one."""
    scheme, url = shape
    assert not _shows_a_marker(redact(url)), redact(url)
    messages = [
        f"cannot reach Redis at {url}: Connection refused",
        f"Error in config {{'url': '{url}', 'socket_timeout': 5.0}}",
        f"[{url}] then <{url}>.\nand {url}",
    ]
    for message in messages if scheme else []:
        assert not _shows_a_marker(redact_text(message)), redact_text(message)
    try:
        validate_url(url, "REDIS_URL")
    except RedisConfigError as exc:
        said = str(exc)
        assert said.startswith("REDIS_URL is not a valid Redis URL: ") and "\n" not in said, said
        assert not _shows_a_marker(said), said
        assert not [part for part in ("alice", "db.example", "127.0.0.1", "fe80", "hóst", "63x9") if part in said]
        assert exc.__cause__ is None and exc.__context__ is None
        return
    assert parse_url(url)  # accepted: redis-py reads it
