"""The one way every command refuses: a single `error:` line on stderr and exit status 2.

Whitespace is folded so that a multi-line reason (a validation error, a traceback-free exception text) stays
one line a CI log or a script can match, and any Redis URL in it is redacted: a password never reaches a log.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from shadow_pipeline.redis_io.url import redact_text


def fail(message: str) -> NoReturn:
    click.echo(f"error: {redact_text(' '.join(message.split()))}", err=True)
    sys.exit(2)
