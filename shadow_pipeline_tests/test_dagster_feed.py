"""The feed through Dagster: definitions load, the asset materializes into a real Redis with useful metadata."""

import dagster as dg
import redis

from shadow_pipeline.defs.feed.assets import FeedConfig, replayed_feed
from shadow_pipeline.defs.feed.jobs import FEED_REPLAY_JOB
from shadow_pipeline.launch import definitions
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.resources import RedisResource, TickStreamResource
from shadow_pipeline_tests.instance_helpers import dagster_instance


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(definitions())
    assert definitions().resolve_job_def(FEED_REPLAY_JOB) is not None


def test_replayed_feed_materializes_into_redis(redis_url: str, redis_client: redis.Redis, stream: str) -> None:
    with dagster_instance() as instance:  # a bare ephemeral() can be collected mid-run
        result = dg.materialize(
            [replayed_feed],
            resources={"redis": RedisResource(url=redis_url), "tick_stream": TickStreamResource(stream=stream)},
            run_config=dg.RunConfig(ops={"replayed_feed": FeedConfig(minutes=0.5, symbols=["ETHUSDT"])}),
            instance=instance,
        )
    assert result.success
    metadata = result.asset_materializations_for_node("replayed_feed")[0].metadata
    written = metadata["entries_written"].value
    assert isinstance(written, int) and written > 1000
    assert written == redis_client.xlen(stream) == metadata["stream_length"].value
    assert "ETHUSDT" in str(metadata["ticks_per_symbol"].value)
    assert metadata["last_entry_id"].value == read_entries(redis_client, stream, count=1, newest=True)[0][0]


def test_feed_fails_clearly_when_redis_is_down(stream: str) -> None:
    with dagster_instance() as instance:  # a bare ephemeral() can be collected mid-run
        result = dg.materialize(
            [replayed_feed],
            resources={
                "redis": RedisResource(url="redis://:hunter2@127.0.0.1:1/0"),
                "tick_stream": TickStreamResource(stream=stream),
            },
            run_config=dg.RunConfig(ops={"replayed_feed": FeedConfig(minutes=0.1)}),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in message
    assert "hunter2" not in message
