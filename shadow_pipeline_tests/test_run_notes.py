"""Run notes read back: notes written before the fill model was a setting say the model they ran (dwell), and
notes written while ``requote.rule`` was a setting load without it."""

from __future__ import annotations

from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.domain.strategies.profiles import FILL_DWELL, FILL_QUEUE
from shadow_pipeline_tests.sim_helpers import gates, params


def _notes(**changes: object) -> RunNotes:
    return RunNotes(
        "2024-08-09-00:00", "BTCUSDT", "test", 5.0, "abc", "redis", params(**changes), gates(1), "", "", 0.0
    )


def test_notes_round_trip_with_their_fill_model() -> None:
    notes = _notes(fill_model=FILL_QUEUE, size_decrease_share=0.5)
    again = RunNotes.from_json(notes.to_json())
    assert again == notes and again.fill_model == "queue (size_decrease_share 0.5)"


def test_notes_without_a_fill_model_read_back_as_the_dwell_they_ran() -> None:
    stored = _notes(fill_model=FILL_QUEUE).to_json()
    del stored["params"]["fill_model"], stored["params"]["size_decrease_share"]  # as an older version wrote them
    old = RunNotes.from_json(stored)
    assert old.params.fill_model == FILL_DWELL and old.fill_model == "dwell (touch_dwell_ms 100)"
    assert old.params_digest != _notes(fill_model=FILL_QUEUE).params_digest  # never mixed with a queue run's


def test_notes_written_while_requote_rule_was_a_setting_read_back() -> None:
    stored = _notes(fill_model=FILL_QUEUE).to_json()
    stored["params"]["requote_rule"] = "on_touch_change"  # the one value it had; nothing read it
    assert RunNotes.from_json(stored) == _notes(fill_model=FILL_QUEUE)
