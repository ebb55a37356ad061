"""Stage 4b: every order the bot placed, the shadow's outcome of it against the real one (issue 21)."""

from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd
import redis

from shadow_pipeline.defs.partitions import tick_partitions
from shadow_pipeline.defs.reconcile import checks
from shadow_pipeline.defs.units import PartitionValue, run_units
from shadow_pipeline.domain.kpis.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.domain.market.windows import hour_bounds
from shadow_pipeline.domain.simulation import shadow
from shadow_pipeline.domain.strategies.external.intents import Grid
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.validation.order_fit import SelfCalibration, self_calibrate, write_fitted_profile
from shadow_pipeline.domain.validation.reconciliation import reconcile, reconciliation_gates
from shadow_pipeline.redis_io.dryrun_fills import BadFillEntry, read_fills
from shadow_pipeline.redis_io.keys import fills_stream, order_stream
from shadow_pipeline.redis_io.order_stream import load_intents
from shadow_pipeline.reporting.plots import markdown_image, reliability_models_png
from shadow_pipeline.reporting.reconciliation import (
    FITTED_PROFILE_FILE,
    reconciliation_plots,
    write_reconciliation_reports,
)
from shadow_pipeline.resources import ArtifactsResource, RedisResource
from shadow_pipeline.summaries import ReconcileSummary, finite

# What the shadow says of the bot's orders in an hour of an instrument: the order engine's per-order table and its
# fills (domain/validation/reconciliation.py, ORDER_COLUMNS and SHADOW_FILL_COLUMNS).
ShadowOrders = Callable[
    [dg.AssetExecutionContext, str, str, pd.DataFrame, StrategyParams, redis.Redis], tuple[pd.DataFrame, pd.DataFrame]
]


# The bot's orders of an hour of an instrument (None: the outcome was given without them, nothing to fit).
PlanOf = Callable[[dg.AssetExecutionContext, str, str, StrategyParams, redis.Redis], OrderPlan]


def bot_plan(
    context: dg.AssetExecutionContext, hour: str, symbol: str, params: StrategyParams, client: redis.Redis
) -> OrderPlan:
    """The orders the bot decided in the hour, from its order stream (bad intents dead-lettered, as
    shadow_iterations does)."""
    loaded = load_intents(client, symbol, Grid(symbol, params.tick_size, params.lot_step))
    plan = loaded.checked.plan.decided_within(*hour_bounds(hour))
    context.log.info(
        f"{symbol} {hour}: {len(plan)} orders of the bot in the hour from {order_stream(symbol)} "
        f"({len(loaded.checked.rejected)} of {loaded.entries} intents rejected)"
    )
    if not len(plan):
        raise dg.Failure(
            f"{symbol} {hour}: {order_stream(symbol)} has no valid order in the hour: nothing to reconcile"
        )
    return plan


def shadow_orders(
    context: dg.AssetExecutionContext,
    hour: str,
    symbol: str,
    normalized_ticks: pd.DataFrame,
    params: StrategyParams,
    client: redis.Redis,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bot's orders of the hour through the order engine under the profile's models: (orders, fills)."""
    simulated = shadow.shadow_orders(normalized_ticks, params, bot_plan(context, hour, symbol, params, client))
    return simulated.orders, simulated.simulation.fills


def reconciliation_asset(outcome: ShadowOrders, plan_of: PlanOf | None = None) -> dg.AssetsDefinition:
    """The asset with ``outcome`` giving the shadow's orders: the code location's takes them from the order
    engine (:func:`shadow_orders`), a test from hand-built frames. ``plan_of``: the bot's orders, for the
    calibration of other queue models and the self-calibration fit (which rerun the order engine)."""

    @dg.asset(
        name=checks.ASSET,
        # not in pipeline_job: it needs a bot's order stream and fills, which a built-in strategy's run has not
        group_name="reconcile",
        partitions_def=tick_partitions,
        kinds={"redis", "pandas"},
        check_specs=checks.RECONCILE_CHECKS,
    )
    def order_reconciliation(
        context: dg.AssetExecutionContext,
        normalized_ticks: PartitionValue,
        shadow_iterations: PartitionValue,
        redis: RedisResource,
        artifacts: ArtifactsResource,
    ) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        """Every order the bot placed (its client order id), matched with the shadow's outcome of it and with
        its real fills from dryrun:fills:{symbol}: which filled in both, which the shadow invented or missed
        (precision, recall), fill-time and quantity errors, markouts, the net_bps gap taken apart step by step
        (fees, timing, price, missed, invented), and how well the predicted fill probability is calibrated.

        The value is the per-order table; ORDER_RECONCILIATION.md/.json and the plots are in the dry-run's
        artifacts folder. Gates (profile thresholds): precision, recall, |net_bps gap|. docs/reconciliation.md.
        """
        yield from run_units(
            context,
            lambda hour, symbol, given: unit(
                context, hour, symbol, given["normalized_ticks"], given["shadow_iterations"], redis, artifacts
            ),
            {"normalized_ticks": normalized_ticks, "shadow_iterations": shadow_iterations},
        )

    def unit(
        context: dg.AssetExecutionContext,
        hour: str,
        symbol: str,
        normalized_ticks: pd.DataFrame,
        shadow_iterations: pd.DataFrame,
        redis: RedisResource,
        artifacts: ArtifactsResource,
    ) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        try:
            notes = run_notes(shadow_iterations)
        except RunNotesMissing as exc:
            raise dg.Failure(str(exc)) from None
        client = redis.get_client()  # bytes: an id that is not UTF-8 is refused naming its entry, not mid-read
        start, end = hour_bounds(hour)
        orders, shadow_fills = outcome(context, hour, symbol, normalized_ticks, notes.params, client)
        try:
            real_fills = read_fills(client, symbol, start, end)
            result = reconcile(orders, shadow_fills, real_fills, normalized_ticks, notes.params)
        except (BadFillEntry, ValueError) as exc:  # the bot's report is outside input: say what is wrong with it
            raise dg.Failure(f"{fills_stream(symbol)}, {hour}: {exc}") from None
        verdicts = reconciliation_gates(result, notes.thresholds)
        folder = artifacts.dryrun_folder(hour, symbol)
        calibration = None
        if plan_of is not None:
            real_filled = result.orders["real_filled_qty"].to_numpy(dtype=float) > 0
            outcomes = pd.DataFrame({"order_id": result.orders["order_id"], "filled": real_filled})
            plan = plan_of(context, hour, symbol, notes.params, client)
            calibration = self_calibrate(
                normalized_ticks, plan, notes.params, notes.thresholds, notes.window_seconds, outcomes
            )
            fitted = write_fitted_profile(
                folder / FITTED_PROFILE_FILE,
                calibration.fit,
                notes.params,
                notes.thresholds,
                f"{notes.params.profile} fitted to the bot's real fills of {symbol} {hour}",
            )
            context.log.info(
                f"{symbol} {hour}: the bot's fills fit {calibration.fit.summary}; verdict {calibration.verdict} "
                f"under the profile's values, {calibration.fitted_verdict} under the fitted ones ({fitted})"
            )
        reality = f"{len(real_fills)} fills from {fills_stream(symbol)}"
        report_notes = {
            "hour": hour,
            "symbol": symbol,
            "profile": notes.params.profile,
            "strategy": notes.params.strategy,
            "shadow": notes.fill_model,
            "reality": reality,
            "markout_horizon_s": notes.params.markout_horizon_s,
        }
        plots = reconciliation_plots(result, f"{symbol} {hour}")
        if calibration is not None:
            plots["models"] = reliability_models_png(calibration.models, f"{symbol} {hour}: p_fill by queue model")
        path = write_reconciliation_reports(folder, result, verdicts, report_notes, plots, calibration)
        failed = [gate.rule for gate in verdicts if not gate.passed]
        say = context.log.warning if failed else context.log.info
        say(f"{symbol} {hour}: order reconciliation " + (f"fails {'; '.join(failed)}" if failed else "passes"))
        numbers = {
            name: dg.MetadataValue.float(float(value))
            for name, value in result.summary().items()
            if isinstance(value, float)
        }
        counts = {
            name: dg.MetadataValue.int(value) for name, value in result.summary().items() if isinstance(value, int)
        }
        yield dg.Output(
            result.orders,
            metadata={
                **counts,
                **numbers,
                "reality": reality,
                "shadow_fill_model": notes.fill_model,
                "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "none"),
                "confusion": dg.MetadataValue.md(result.confusion.to_markdown(index=False, floatfmt=".4g")),
                "waterfall": dg.MetadataValue.md(result.waterfall.to_markdown(index=False, floatfmt=".4g")),
                "markouts": dg.MetadataValue.md(result.markouts.to_markdown(index=False, floatfmt=".4g")),
                "calibration": dg.MetadataValue.md(result.calibration.to_markdown(index=False, floatfmt=".4g")),
                **{
                    f"{name}_plot": dg.MetadataValue.md(markdown_image(png, name.replace("_", " ")))
                    for name, png in plots.items()
                },
                "report": dg.MetadataValue.path(str(path)),
                **_calibration_metadata(calibration),
                **ReconcileSummary(
                    numbers={name: finite(value) for name, value in result.summary().items()},
                    failed=failed,
                    report=str(path),
                ).metadata(),
            },
        )
        yield from checks.reconciliation_checks(verdicts)

    return order_reconciliation


def _calibration_metadata(calibration: SelfCalibration | None) -> dict[str, dg.MetadataValue]:
    if calibration is None:
        return {}
    brier = {
        f"brier_{label.replace(' ', '_').replace('.', '_')}": dg.MetadataValue.float(float(value[1]))
        for label, value in calibration.models.items()
    }
    return {
        **brier,
        "fit": dg.MetadataValue.text(calibration.fit.summary),
        "fit_table": dg.MetadataValue.md(calibration.fit.table.head(12).to_markdown(index=False, floatfmt=".4g")),
        "verdict_profile": dg.MetadataValue.text(calibration.verdict),
        "verdict_fitted": dg.MetadataValue.text(calibration.fitted_verdict),
    }


order_reconciliation = reconciliation_asset(shadow_orders, bot_plan)
