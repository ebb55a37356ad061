"""deploy/compose.yaml, the deployment of docs/scaling.md: valid by the compose specification (check-jsonschema's
copy of it, since `docker compose config` needs Docker), with broken copies refused; the project's services set
only the variables settings.py declares, carry no secret, and run commands that exist."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadow_pipeline import settings
from shadow_pipeline_tests.instance_helpers import REPO

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
PROJECT_IMAGE = "shadow-pipeline:"
DECLARED = {value for name, value in vars(settings).items() if name.endswith("_ENV") and isinstance(value, str)}
SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
# The Dagster tools the services run, from the venv (CI has no venv on PATH).
DAGSTER_TOOLS = {"dagster", "dagster-webserver", "dagster-daemon", "dagster-celery"}
URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@\s]+)@")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the file's anchors and merge keys
    return loaded


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _problems(compose: dict[str, Any]) -> list[str]:
    """What `docker compose config` refuses beyond the schema: a service with nothing to run, a build without its
    Dockerfile, a config file that is not there."""
    found = []
    for name, service in compose["services"].items():
        if "image" not in service and "build" not in service:
            found.append(f"{name}: neither image nor build")
        if "build" in service:
            build = service["build"]
            if not (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).is_file():
                found.append(f"{name}: no Dockerfile at {build}")
    found += [
        f"config {n}: no {c['file']}" for n, c in compose["configs"].items() if not (DEPLOY / c["file"]).is_file()
    ]
    return found


def _project_services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    return {name: s for name, s in services.items() if str(s.get("image", "")).startswith(PROJECT_IMAGE)}


def test_the_compose_file_is_valid() -> None:
    checked = _schema_check(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _problems(_compose()) == []


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(compose: dict[str, Any]) -> None:
        node = compose
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _drop_image_and_build(compose: dict[str, Any]) -> None:
    del compose["services"]["webserver"]["image"], compose["services"]["webserver"]["build"]


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown top-level key": _set("servcies", {}),
    "a port that is a boolean": _set("services.webserver.ports", [True]),
    "a port mapping with an unknown field": _set("services.webserver.ports", [{"target": 3000, "protocol_": "tcp"}]),
    "an unknown depends_on condition": _set("services.daemon.depends_on.redis", {"condition": "service_ready"}),
    "environment as a number": _set("services.daemon.environment", 3),
    "command as a mapping": _set("services.daemon.command", {"run": "dagster-daemon"}),
    "a volume of an unknown type": _set("services.daemon.volumes", [{"type": "disk", "source": "x", "target": "/x"}]),
    "a misspelt healthcheck field": _set("services.redis.healthcheck.retry", 3),
    "restart as a boolean": _set("services.daemon.restart", True),
    "an unknown service key": _set("services.daemon.replicas", 2),
}


@pytest.mark.parametrize("breakage", BROKEN.values(), ids=BROKEN.keys())
def test_the_schema_refuses_a_broken_copy(tmp_path: Path, breakage: Callable[[dict[str, Any]], None]) -> None:
    compose = copy.deepcopy(_compose())
    breakage(compose)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(compose))
    checked = _schema_check(broken)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Schema validation errors" in checked.stdout + checked.stderr


# What the compose schema lets through (a service may leave both out; an interpolated value may be any string) but
# `docker compose config` and the engine would not.
SCHEMA_BLIND: dict[str, Callable[[dict[str, Any]], None]] = {
    "a service without image or build": _drop_image_and_build,
    "a build whose Dockerfile is missing": _set("services.instance.build", {"context": "..", "dockerfile": "No"}),
    "a config file that is missing": _set("configs.workspace", {"file": "./nowhere.yaml"}),
}


@pytest.mark.parametrize("breakage", SCHEMA_BLIND.values(), ids=SCHEMA_BLIND.keys())
def test_what_the_schema_lets_through_is_still_refused(breakage: Callable[[dict[str, Any]], None]) -> None:
    compose = copy.deepcopy(_compose())
    breakage(compose)
    assert len(_problems(compose)) == 1


def test_the_services_set_only_declared_settings() -> None:
    services = _project_services()
    assert {"code-location", "webserver", "daemon", "celery-worker", "instance"} <= set(services)
    for name, service in services.items():
        assert set(service["environment"]) <= DECLARED, (name, set(service["environment"]) - DECLARED)
    assert services["celery-worker"]["environment"][settings.EXECUTOR_ENV] == "celery"


def test_no_secret_is_written_in_the_deployment() -> None:
    for path in DEPLOY.iterdir():
        for password in URL_PASSWORD.findall(path.read_text()):
            assert password.startswith("${") and password.endswith(":?}"), (path.name, password[:2])
    environments = [s.get("environment", {}) for s in _compose()["services"].values()]
    secrets = [v for env in environments for k, v in env.items() if "PASS" in k or "AUTH" in k]
    assert secrets and all(re.fullmatch(r"\$\{[A-Z_]+:\?\}", value) for value in secrets), secrets


def _help_command(command: list[str]) -> list[str]:
    """The command with --help, run from this checkout. A project command keeps its whole argv, so click refuses
    an option the command does not have (or a misspelt one) before it prints the help; a Dagster tool keeps its
    subcommand words only, as some pass the rest on to another program (dagster-celery's ``-- celery args``)."""
    tool, *rest = command
    if tool in SCRIPTS:
        module = SCRIPTS[tool].split(":")[0]
        return [sys.executable, "-m", module, *rest, "--help"]
    assert tool in DAGSTER_TOOLS, f"{tool} is neither a project script nor a Dagster tool"
    subcommands = [word for word in itertools.takewhile(lambda word: not word.startswith("-"), rest)]
    return [str(Path(sys.executable).parent / tool), *subcommands, "--help"]


def test_every_command_is_a_real_entry_point() -> None:
    commands = {tuple(s["command"]) for s in _project_services().values()}
    assert {c[:2] for c in commands} >= {("shadow-pipeline", "feed"), ("shadow-pipeline", "ingest"), ("dagster", "api")}
    for command in sorted(commands):
        done = subprocess.run(_help_command(list(command)), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    grpc = next(c for c in commands if c[:2] == ("dagster", "api"))
    assert importlib.util.find_spec(grpc[grpc.index("-m") + 1]) is not None
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert (workspace["host"], str(workspace["port"])) == ("code-location", grpc[grpc.index("-p") + 1])


def test_a_misspelt_option_of_a_project_command_is_refused() -> None:
    feed = list(_project_services()["feed-binance-usdm"]["command"])
    feed[feed.index("--maxlen")] = "--maxln"
    done = subprocess.run(_help_command(feed), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--maxln" in done.stderr, done.stderr[-500:]


def test_the_celery_workers_resolved_broker_stays_off_the_shared_dagster_home(tmp_path: Path) -> None:
    """dagster-celery's ``worker start -y`` writes the resolved broker URL into a config module under
    $DAGSTER_HOME. Run its own writer on celery.yaml with a password in the variable, then check that every file
    holding it falls under a tmpfs of the compose file's workers, not on the volume every Dagster service mounts."""
    password = "S3cretPw"
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    script = f"from dagster_celery.cli import get_config_dir; get_config_dir({str(DEPLOY / 'celery.yaml')!r})"
    broker = f"pyamqp://shadow:{password}@rabbitmq:5672//"
    subprocess.run(
        [sys.executable, "-c", script],
        env={"DAGSTER_HOME": str(home), settings.CELERY_BROKER_ENV: broker, "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=120,
    )
    holding = [
        path.relative_to(home) for path in home.rglob("*") if path.is_file() and password.encode() in path.read_bytes()
    ]
    assert holding, "dagster-celery no longer writes the broker into DAGSTER_HOME: drop the tmpfs and this test"
    worker = _compose()["services"]["celery-worker"]
    in_container = [f"{worker['environment']['DAGSTER_HOME']}/{path}" for path in holding]
    assert all(any(file.startswith(f"{mount}/") for mount in worker.get("tmpfs", [])) for file in in_container)


def _without_run_limits(instance: dict[str, Any]) -> dict[str, Any]:
    """An instance file's settings with the numbers of its run limits taken out (what a deployment sizes)."""
    runs = copy.deepcopy(instance)["concurrency"]["runs"]
    del runs["max_concurrent_runs"]
    for rule in runs["tag_concurrency_limits"]:
        del rule["limit"]
    return {**instance, "concurrency": {**instance["concurrency"], "runs": runs}}


def test_the_deployments_instance_differs_from_the_checked_in_one_only_in_its_run_limits() -> None:
    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert _without_run_limits(deployed) == _without_run_limits(yaml.safe_load((REPO / "dagster.yaml").read_text()))
    compose = _compose()
    instance = compose["services"]["instance"]
    base = instance["command"][instance["command"].index("--base") + 1]
    [config] = [c["source"] for c in instance["configs"] if c["target"] == base]
    assert compose["configs"][config]["file"] == "./dagster.yaml"


def test_every_shard_has_its_consumers_and_a_run_slot() -> None:
    """One run per shard drains at a time (the shadow/stream limit), so the shards bound the runs at once, and the
    shadow runs' limit should let every shard's run go."""
    services = _project_services()
    shards = int(services["ingest-shard-0"]["environment"][settings.STREAM_SHARDS_ENV])
    consumed = sorted(int(s["command"][-1]) for name, s in services.items() if name.startswith("ingest-shard-"))
    assert consumed == list(range(shards))
    limits = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    [shadow_runs] = [rule["limit"] for rule in limits if rule.get("value") == "shadow"]
    assert shadow_runs == shards


def test_the_deployments_partitions_stay_within_dagsters_guidance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sized for 500 instruments on 5 venues (the file's first line): day x group partitions, the days kept and
    the day since code-location loaded (its start moves only when it restarts) stay within 100,000 partitions per
    asset, and the settings accept the values. The checks are plain: a partitioned check's tab took seconds per
    check at 25,550 (docs/partitions.md)."""
    from shadow_pipeline.domain.market.partition_layouts import DAGSTER_MAX_PARTITIONS, MAX_PER_GROUP, groups_per_venue

    assert "500 instruments" in (DEPLOY / "compose.yaml").read_text().splitlines()[0]
    environment = _compose()["x-shadow-env"]
    assert settings.PARTITIONED_CHECKS_ENV not in environment  # the layout's default
    for variable in (settings.RETENTION_DAYS_ENV, settings.PARTITION_LAYOUT_ENV):
        monkeypatch.setenv(variable, environment[variable])
    settings.check()
    days = settings.retention_days()
    shards = int(environment[settings.STREAM_SHARDS_ENV])
    # A group holds one shard of one venue: at most ceil(100 / 16) + shards - 1 groups of a venue's 100 instruments.
    groups = 5 * (groups_per_venue(100, MAX_PER_GROUP) + shards - 1)
    assert settings.partition_layout() == "day_x_group" and days is not None and days >= 730  # 2 years
    assert (days + 1) * groups <= DAGSTER_MAX_PARTITIONS
    assert settings.partitioned_checks() is False


def test_the_image_installs_what_a_default_pipeline_run_imports() -> None:
    """The image's extras: ``scale`` for the deployment's storage and executor, and the extra of every default
    dry-run reality that is not in the base install (hftbacktest for the queue fill model), else every pipeline_job
    run of a packaged profile fails its dry-run step."""
    from shadow_pipeline.domain.simulation.models import FILL_MODELS

    pip = re.search(r"pip install [^\n]*\"\.\[([a-z,]+)\]\"", (REPO / "Dockerfile").read_text())
    assert pip, "the Dockerfile installs the project with its extras"
    installed = set(pip.group(1).split(","))
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert installed <= set(extras)
    needs = {"scale"} | {"hbt" for model in FILL_MODELS.values() if model.reality == "hftbacktest"}
    assert needs <= installed
