"""Fill models by name: one registry, the schema names the same models, and no module but the registry compares
their names (each asks the model object instead)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

import shadow_pipeline
from shadow_pipeline.domain.simulation.models import (
    FEE_MODELS,
    FILL_MODELS,
    LATENCY_MODELS,
    fee_model_of,
    fill_model_of,
    latency_model_of,
)
from shadow_pipeline.domain.strategies.profiles import ProfileError
from shadow_pipeline.domain.tuning.search_space import with_values
from shadow_pipeline_tests.sim_helpers import params

PACKAGE = Path(shadow_pipeline.__file__).resolve().parent
NAME_COMPARE = re.compile(r"fill_model\s*[!=]=|==\s*FILL_(QUEUE|DWELL)|isinstance\([^)]*(TouchDwell|QueueAware)")


def test_the_schema_offers_exactly_the_registered_models() -> None:
    schema = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.schema.json").read_text())
    settings = schema["$defs"]["params"]["properties"]
    assert set(settings["fill"]["properties"]["model"]["enum"]) == set(FILL_MODELS)
    assert set(settings["latency_model"]["enum"]) == set(LATENCY_MODELS)
    assert set(settings["fee_model"]["enum"]) == set(FEE_MODELS)


def test_the_profile_names_its_latency_and_fee_models() -> None:
    p = params(order_entry_latency_ms=7.0, taker_fee_rate=0.0004)
    assert latency_model_of(p).entry_ns == 7_000_000 and fee_model_of(p).taker_rate == 0.0004
    with pytest.raises(ValueError, match="unknown latency model 'gaussian'; known: constant"):
        latency_model_of(params(latency_model="gaussian"))


@pytest.mark.parametrize("name", sorted(FILL_MODELS))
def test_each_fill_model_answers_what_the_pipeline_asks(name: str) -> None:
    model = fill_model_of(params(fill_model=name))
    assert model.name == name and name in model.label
    assert model.reality != name  # the dry-run's default reality is never the model itself
    knob = model.knob()
    assert knob.low <= knob.value <= knob.high
    assert getattr(knob.at(params(fill_model=name), knob.high), knob.name) == knob.high
    for other in set(FILL_MODELS) - {name}:  # a setting only this model reads is refused under another
        for setting in model.tunables:
            with pytest.raises(ProfileError, match=f"{setting} applies to the {name} fill model only"):
                with_values(params(fill_model=other), {setting: 1})


def test_no_module_but_the_registry_compares_fill_model_names() -> None:
    found = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if NAME_COMPARE.search(line)
    }
    assert set(found) <= {"domain/simulation/models.py"}, found
