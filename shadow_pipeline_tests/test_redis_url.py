import pytest

from shadow_pipeline.redis_io.url import RedisConfigError, redact, validate_url


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
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


@pytest.mark.parametrize("url", ["http://host:6379", "redis://:pw@host:notaport/0", "redis:///0"])
def test_bad_urls_are_rejected_without_the_password(url: str) -> None:
    with pytest.raises(RedisConfigError) as info:
        validate_url(url)
    assert "pw" not in str(info.value)
