"""What a person sees in Dagster's UI, in a real browser: the stages, a partition launched from the launchpad
with a chosen profile, a No-Go recognisable in the runs list and the gate checks, and the report with its plot.

One `dagster dev` and one browser serve the whole module; the run launched by clicks in the first tests is the
one the later tests look at. Screenshots go to docs/screenshots/ (docs/ui.md).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from shadow_pipeline import cli, settings
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.shadow.checks import KPI_THRESHOLDS, MIN_VALID_WINDOWS
from shadow_pipeline.defs.shadow.jobs import SHADOW_JOB
from shadow_pipeline.defs.shadow.tags import VERDICT_TAG
from shadow_pipeline.domain.kpis.gates import NO_GO, kpi_gates
from shadow_pipeline.domain.market.synthetic import DEFAULT_START
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.launch import default, definitions
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline.reporting.snapshot import PLOT_FILE
from shadow_pipeline.resources import ArtifactsResource
from shadow_pipeline_tests.ui_helpers import (
    CHROMIUM,
    NO_CHROMIUM,
    TIMEOUT_MS,
    chromium_page,
    dagster_dev,
    screenshot,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)

SYMBOL = "BTCUSDT"
HOUR = DEFAULT_START.strftime(settings.HOUR_FORMAT)  # where the synthetic market starts
PARTITION = str(partition_key(HOUR, SYMBOL))
MINUTES = 3  # of market: 3 windows of 60 s, far short of any profile's min_windows, so a No-Go
PROFILE = "conservative"
LOCATION = "shadow_pipeline.definitions"  # `dagster dev -m` names the code location after the module
OFFER_MS = 5_000  # for the partition picker to offer a typed key
RUN_TIMEOUT_MS = 300_000  # ingest, simulation and report of the partition on a crowded machine


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-artifacts")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[str]:
    """`dagster dev` over a Redis holding MINUTES of the synthetic market, replayed by the CLI as `make` does.

    The Redis is a server of this module alone: the UI's resources read the default stream (``lob:ticks``), which
    the tests' shared server (or a CI Redis at $REDIS_URL) must not be asked to give up. The partitions start at
    the market's hour and cover one symbol, so the launchpad's partition list stays short.
    """
    server = start_server()
    try:
        replay = f"replay --source synthetic --minutes {MINUTES} --symbols {SYMBOL} --redis-url {server.url}"
        replayed = CliRunner().invoke(cli.main, replay.split())
        assert replayed.exit_code == 0, replayed.output
        data = tmp_path_factory.mktemp("ui-data")
        env = {
            settings.REDIS_URL_ENV: server.url,
            settings.DATA_DIR_ENV: str(data),
            settings.ARTIFACTS_DIR_ENV: str(artifacts_dir),
            settings.SYMBOLS_ENV: SYMBOL,
            settings.FIRST_HOUR_ENV: HOUR,
        }
        with dagster_dev(tmp_path_factory.mktemp("ui-home"), env) as url:
            yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(ui: str) -> Iterator[Page]:
    with chromium_page() as opened:
        yield opened


@pytest.fixture(scope="module")
def launched_run(ui: str, page: Page) -> str:
    """The shadow job's launchpad, as a person uses it: pick the partition, type the profile over the default in
    the run config, launch. Returns the run id of the run page the launch opens."""
    page.goto(f"{ui}/locations/{LOCATION}/jobs/{SHADOW_JOB}/playground")
    _pick_partition(page, PARTITION)
    expect(page.get_by_text(f"partition/symbol: {SYMBOL}")).to_be_visible()
    editor = page.locator(".CodeMirror")
    editor.get_by_text(default(ShadowConfig, "profile")).dblclick()
    page.keyboard.type(PROFILE)
    expect(editor).to_contain_text(f"profile: '{PROFILE}'")
    expect(page.get_by_text("No errors")).to_be_visible()
    screenshot(page, "launchpad")
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[-1]


def _pick_partition(page: Page, key: str) -> None:
    """Type the key into the launchpad's partition picker and choose it from the list. The picker is drawn before
    the job's partitions have loaded and drawn anew when they have, dropping what was typed: type again until the
    key is offered."""
    picker, offered = page.get_by_placeholder("Partition"), page.get_by_role("menuitem", name=key)
    for _ in range(TIMEOUT_MS // OFFER_MS):
        picker.click()  # opens the list, which typing filters
        picker.fill(key)
        try:
            offered.click(timeout=OFFER_MS)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"the launchpad never offered partition {key}")


def _finished(ui: str, page: Page, run_id: str) -> None:
    """Open the run's page and wait until its status reads Success (the page follows the run as it goes)."""
    page.goto(f"{ui}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)


def _row(page: Page, table: Locator, key: str) -> Locator:
    """The metadata table's row of ``key``."""
    return table.locator("tr").filter(has=page.get_by_text(key, exact=True)).first


def _thresholds(profile: str) -> list[str]:
    return [gate.rule for gate in kpi_gates(resolve(load_profiles(), profile, SYMBOL)[1])]


def test_asset_graph_shows_every_stage(ui: str, page: Page) -> None:
    groups = sorted({str(spec.group_name) for spec in definitions().resolve_all_asset_specs()})
    assert {"feed", "ingest", "shadow", "export", "dryrun", "tune"} <= set(groups)
    page.goto(f"{ui}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in groups:  # a group's node in the graph carries its name as tooltip; the sidebar's entries do not
        expect(page.locator(f'[data-tooltip="{group}"]')).to_have_text(group)
    screenshot(page, "asset-graph")


def test_a_partition_launched_from_the_launchpad_with_another_profile_succeeds(
    ui: str, page: Page, launched_run: str
) -> None:
    assert default(ShadowConfig, "profile") != PROFILE
    _finished(ui, page, launched_run)
    expect(page.get_by_text(f"partition: {PARTITION}").first).to_be_visible()
    page.get_by_role("button", name="View tags and config").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"profile: {PROFILE}")
    screenshot(page, "run")


def test_a_no_go_run_and_its_partition_are_recognisable(ui: str, page: Page, launched_run: str) -> None:
    min_windows = resolve(load_profiles(), PROFILE, SYMBOL)[1].min_windows
    assert min_windows > MINUTES
    _finished(ui, page, launched_run)
    page.goto(f"{ui}/runs")
    link = page.get_by_role("link", name=f"run {launched_run[:8]}")
    row = page.locator("div").filter(has=link).filter(has_text="Success").last  # the innermost: the run's row
    expect(row).to_contain_text(f"{VERDICT_TAG}: {NO_GO}")  # beside Success: a No-Go is a verdict, not a crash
    screenshot(page, "runs-no-go")
    page.goto(f"{ui}/assets/shadow_report?view=checks")
    for check in (KPI_THRESHOLDS, MIN_VALID_WINDOWS):  # the list of the asset's checks: name, latest status
        expect(page.get_by_text(re.compile(rf"^({check}\s*)+Failed$"))).to_be_visible()
    page.get_by_text(MIN_VALID_WINDOWS, exact=True).first.click()
    expect(page.get_by_text(f"valid_windows {MINUTES} < {min_windows}")).to_be_visible()  # latest execution
    expect(page.get_by_text(PARTITION, exact=True)).to_be_visible()  # ... of the partition
    screenshot(page, "check-no-go")


def test_the_report_shows_verdict_gates_and_a_rendered_plot(
    ui: str, page: Page, launched_run: str, artifacts_dir: Path
) -> None:
    rules = _thresholds(PROFILE)
    _finished(ui, page, launched_run)
    page.goto(f"{ui}/assets/shadow_report?view=partitions&partition={quote(PARTITION)}")
    metadata = page.locator("table").filter(has_text="verdict").first
    expect(_row(page, metadata, "verdict")).to_contain_text(NO_GO)
    expect(_row(page, metadata, "profile")).to_contain_text(PROFILE)
    screenshot(page, "report")
    for rule in rules:
        expect(metadata.get_by_text(rule, exact=True)).to_be_visible()
    _row(page, metadata, "gates").scroll_into_view_if_needed()
    screenshot(page, "report-gates")
    _row(page, metadata, "kpi_plot").get_by_text("[Show Markdown]").click()
    plot = page.get_by_role("dialog").get_by_role("img", name=f"{SYMBOL} KPIs per window")
    expect(plot).to_be_visible()
    width, height = plot.evaluate(
        """img => new Promise(done => {
            const size = () => done([img.naturalWidth, img.naturalHeight]);
            if (img.complete) size(); else { img.onload = size; img.onerror = size; }
        })"""
    )
    png = (ArtifactsResource(base_path=str(artifacts_dir)).shadow_folder(HOUR, SYMBOL) / PLOT_FILE).read_bytes()
    assert width > 0 and height > 0
    assert (width, height) == struct.unpack(">II", png[16:24])  # the PNG the report wrote, decoded by the browser
    screenshot(page, "report-plot")
