"""Dagster's UI as a person sees it: `dagster dev` on a throw-away instance, and Debian's Chromium driven by
Playwright (no browser download works here, so Playwright's own builds are never used)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from shadow_pipeline.redis_io.server import _free_port
from shadow_pipeline_tests.instance_helpers import project_home
from shadow_pipeline_tests.process_helpers import stop_group

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = "Debian chromium not installed: run `make system-deps`"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Seven engineers share two cores: the UI is slow here, a page may take tens of seconds to render.
TIMEOUT_MS = 60_000
SERVER_START_S = 180.0


@contextmanager
def dagster_dev(home: Path, env: Mapping[str, str]) -> Iterator[str]:
    """`dagster dev` (webserver and daemon, so launched runs leave the queue) on the instance in ``home`` with the
    project's dagster.yaml; yields the UI's base URL. Its whole process group is stopped afterwards."""
    with project_home(home) as home_env:  # on PostgreSQL when $SHADOW_DAGSTER_PG_URL is set
        yield from _serve(home, {**env, **home_env})


def _serve(home: Path, env: Mapping[str, str]) -> Iterator[str]:
    port = _free_port()
    log = (home / "dagster-dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "shadow_pipeline.definitions", "-p", str(port)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_serving(port, process, home / "dagster-dev.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process)
        log.close()


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"dagster dev did not serve within {SERVER_START_S:g} s:\n{log.read_text()[-3000:]}")


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of Debian's Chromium on a fresh profile (no stored launchpad tabs or dismissed dialogs), with the
    "Join the Dagster community" modal skipped whenever it shows up: it comes late, over whatever page is open."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page = context.new_page()
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        try:
            yield page
        finally:
            context.close()


def screenshot(page: Page, name: str) -> Path:
    """The page as docs/screenshots/<name>.png (docs/ui.md shows them): written on every run, so they stay current."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path)
    return path
