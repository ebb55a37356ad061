"""Redis URLs: a password never shows, in any shape redis-py accepts, alone or quoted in a longer message."""

import pytest
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
        ("unix:///run/redis@main.sock?db=0", "unix:///run/redis@main.sock?db=0"),
        ("redis://host:6379/0?client_name=shadow@prod", "redis://host:6379/0?client_name=shadow@prod"),
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
    pytest.param("redis://alice:@db.example:6379/0", [], ["alice", "db.example:6379/0"], id="empty-password"),
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
    assert shown.startswith("cannot reach Redis at ") and shown.endswith(": Connection refused"), shown
    assert shown == f"cannot reach Redis at {redact(url)}: Connection refused"


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
