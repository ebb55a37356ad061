"""Order by order: what the shadow said each of the bot's orders would do, against what it really did.

The window KPIs of the dry-run can agree while the fills behind them differ (the shadow filling other orders than
the venue did, as many, at as good a markout). Here every order the bot placed (its client order id) is matched
with the shadow's outcome of that order and with its real fills, so each disagreement has a name: a fill the
shadow invented, one it missed, a fill at another time, quantity or price. docs/reconciliation.md explains how
to read every number.

net_bps is per_window's: sum(notional * (markout_bps - fee_bps)) / sum(notional) over fills whose markout is
known, i.e. 1e4 * sum(side * qty * (mid_markout - price) - fee) / sum(price * qty). Both sides are marked by the
same ticks with the simulator's rule (``markout_mids``), so a difference is the fills', not the marking's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.simulator import markout_mids
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds
from shadow_pipeline.domain.validation.actual_fills import FILL_COLUMNS, validate_fills

ORDER_COLUMNS = (
    "order_id",
    "side",
    "price",
    "qty",
    "market",
    "decision_ts",
    "live_ts",
    "end_ts",
    "status",
    "filled_qty",
    "first_fill_ts",
    "fill_vwap",
    "fee",
    "p_fill",
)
SHADOW_FILL_COLUMNS = ("ts", "side", "price", "qty", "fee", "order_id")
REAL_FILL_COLUMNS = (*FILL_COLUMNS, "order_id")

BOTH, SHADOW_ONLY, REAL_ONLY, NEITHER = "both", "shadow only", "real only", "neither"
GROUPS = (BOTH, SHADOW_ONLY, REAL_ONLY, NEITHER)
# The waterfall from the shadow's net_bps to the real one, in this order (docs/reconciliation.md says why).
FEES, TIMING, PRICE, MISSED, INVENTED = "fees", "timing", "price and quantity", "missed fills added", "invented removed"
STEPS = (FEES, TIMING, PRICE, MISSED, INVENTED)
PRECISION, RECALL, NET_BPS_GAP = "precision", "recall", "net_bps_gap"  # the gated metrics
FILL_TIME_QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
CALIBRATION_BINS = 10
# Log loss of a certain prediction that is wrong is infinite; p is clipped to [EPS, 1 - EPS] (scikit-learn's
# long-time default), so one such order costs -ln(1e-15) = 34.5 nats and the sum stays comparable.
LOG_LOSS_EPS = 1e-15
_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Reconciliation:
    """The per-order match and what it adds up to.

    ``orders``: one row per order, the shadow's outcome (``shadow_*``, from the engine's order table), the real
    one (``real_*``, from the bot's fills) and ``group`` (:data:`GROUPS`), with ``fill_time_error_ms`` (real
    first fill - shadow first fill; orders filled in both) and ``qty_error`` (real - shadow filled quantity).
    ``confusion``: per group the orders, their quantity and what each side filled. ``markouts``: per group and
    side, the fills' notional-weighted markout, fees and net_bps. ``fill_time``: quantiles of the fill-time
    error. ``waterfall``: the net_bps gap taken apart (:data:`STEPS`), each step's component and the net_bps
    after it. ``calibration``: per bin of predicted ``p_fill``, the orders and the share that really filled.
    ``unplaced_fills``: real fills naming an order id not among the orders (with their quantity);
    ``unattributed_fills``: real fills without an order id. ``notes``: why a number is undefined, and what was
    left out.
    """

    orders: pd.DataFrame
    confusion: pd.DataFrame
    precision: float
    recall: float
    fill_time: pd.DataFrame
    fill_time_median_ms: float
    fill_time_p90_ms: float
    fill_time_mean_ms: float
    qty_error_abs_mean: float
    qty_equal_share: float
    markouts: pd.DataFrame
    shadow_net_bps: float
    real_net_bps: float
    waterfall: pd.DataFrame
    calibration: pd.DataFrame
    brier: float
    log_loss: float
    unplaced_fills: int
    unplaced_qty: float
    unattributed_fills: int
    notes: tuple[str, ...]

    @property
    def net_bps_gap(self) -> float:
        """real - shadow net_bps over the orders' fills (NaN when either side has no marked fill)."""
        return self.real_net_bps - self.shadow_net_bps

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, as reports and metadata show them."""
        counts = self.confusion.set_index("group")["orders"]
        return {
            "orders": len(self.orders),
            **{f"orders_{group.replace(' ', '_')}": int(counts[group]) for group in GROUPS},
            "precision": self.precision,
            "recall": self.recall,
            "fill_time_median_ms": self.fill_time_median_ms,
            "fill_time_p90_ms": self.fill_time_p90_ms,
            "fill_time_mean_ms": self.fill_time_mean_ms,
            "qty_error_abs_mean": self.qty_error_abs_mean,
            "qty_equal_share": self.qty_equal_share,
            "shadow_net_bps": self.shadow_net_bps,
            "real_net_bps": self.real_net_bps,
            "net_bps_gap": self.net_bps_gap,
            "brier": self.brier,
            "log_loss": self.log_loss,
            "unplaced_fills": self.unplaced_fills,
            "unplaced_qty": self.unplaced_qty,
            "unattributed_fills": self.unattributed_fills,
        }


@dataclass(frozen=True)
class ReconciliationGate:
    """One of the reconciliation's gates (thresholds of the profile): ``metric`` (:data:`PRECISION`,
    :data:`RECALL` or :data:`NET_BPS_GAP`), its value, the rule and whether it holds. An undefined value fails,
    with ``note`` saying why: nothing compared is nothing vouched for."""

    metric: str
    value: float
    threshold: float
    rule: str
    passed: bool
    note: str


def reconciliation_gates(result: Reconciliation, thresholds: Thresholds) -> list[ReconciliationGate]:
    """Precision and recall at least their minimum, |real - shadow net_bps| at most its maximum."""
    checks = (
        (
            PRECISION,
            result.precision,
            thresholds.min_fill_precision,
            "min_fill_precision",
            "the shadow filled no order",
        ),
        (RECALL, result.recall, thresholds.min_fill_recall, "min_fill_recall", "no order really filled"),
        (NET_BPS_GAP, result.net_bps_gap, thresholds.max_net_bps_gap, "max_net_bps_gap", "a side has no marked fill"),
    )
    found = []
    for metric, value, threshold, name, undefined in checks:
        at_most = metric == NET_BPS_GAP
        passed = bool(abs(value) <= threshold if at_most else value >= threshold)  # NaN compares False
        rule = f"|{metric}| <= {name} {threshold:g}" if at_most else f"{metric} >= {name} {threshold:g}"
        found.append(
            ReconciliationGate(
                metric, value, threshold, rule, passed, f"undefined: {undefined}" if np.isnan(value) else ""
            )
        )
    return found


def _missing(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"{what}: missing columns {', '.join(absent)} (need {', '.join(columns)})")


def _validated_orders(orders: pd.DataFrame, shadow_fills: pd.DataFrame) -> None:
    """The engine's tables are checked for what the matching relies on: a repeated or unknown order id would
    join fills to the wrong order, a p_fill outside [0, 1] would make the calibration meaningless."""
    _missing(orders, ORDER_COLUMNS, "orders")
    _missing(shadow_fills, SHADOW_FILL_COLUMNS, "shadow fills")
    repeated = orders["order_id"].duplicated()
    if repeated.any():
        raise ValueError(f"orders: order id {orders['order_id'][repeated].iloc[0]!r} appears more than once")
    p_fill = orders["p_fill"].to_numpy(dtype=np.float64)
    if not ((p_fill >= 0) & (p_fill <= 1)).all():
        raise ValueError("orders: p_fill must be a probability in [0, 1] (no NaN)")
    strays = ~shadow_fills["order_id"].isin(orders["order_id"])
    if strays.any():
        raise ValueError(f"shadow fills: order id {shadow_fills['order_id'][strays].iloc[0]!r} is not in orders")


@dataclass(frozen=True)
class _Marked:
    """Per order, sums over one side's fills whose markout is known: what net_bps is made of."""

    notional: np.ndarray  # sum price * qty
    qty: np.ndarray
    qty_mid: np.ndarray  # sum qty * markout mid
    fee: np.ndarray

    def pnl(self, side: np.ndarray) -> np.ndarray:
        """side * qty * (markout mid - price) - fee: notional * (markout_bps - fee_bps) / 1e4."""
        return side * (self.qty_mid - self.notional) - self.fee


def _marked(fills: pd.DataFrame, at: np.ndarray, mid_h: np.ndarray, n: int) -> _Marked:
    known = ~np.isnan(mid_h)
    price, qty = fills["price"].to_numpy(dtype=np.float64), fills["qty"].to_numpy(dtype=np.float64)
    fee = fills["fee"].to_numpy(dtype=np.float64)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(at[known], weights=values[known], minlength=n)

    return _Marked(total(price * qty), total(qty), total(qty * np.nan_to_num(mid_h)), total(fee))


def _net(pnl: float, notional: float) -> float:
    return 1e4 * pnl / notional if notional > 0 else float("nan")


def _waterfall(side: np.ndarray, shadow: _Marked, real: _Marked) -> tuple[float, float, pd.DataFrame]:
    """net_bps from the shadow's fills to the real ones in :data:`STEPS`, each replacing one thing; the
    components telescope, so they sum to real - shadow exactly (up to float rounding).

    Matched orders (marked fills on both sides) change in place: (1) the real fee rate (real fee / real notional)
    on the shadow's notional; (2) the real fills' markout mid (per unit, real-quantity weighted) at the shadow's
    price and quantity; (3) the real price and quantity, which leaves the real fills. Then (4) the fills the
    shadow missed are added and (5) those it invented removed.
    """
    matched = (shadow.notional > 0) & (real.notional > 0)
    invented = (shadow.notional > 0) & ~matched
    missed = (real.notional > 0) & ~matched
    s_pnl, r_pnl = shadow.pnl(side), real.pnl(side)
    safe_real_notional = np.where(matched, real.notional, 1.0)
    real_rate = real.fee / safe_real_notional
    real_mid = real.qty_mid / np.where(matched, real.qty, 1.0)
    pnl = float(s_pnl[matched | invented].sum())
    notional = float(shadow.notional[matched | invented].sum())
    start = _net(pnl, notional)
    changes = {
        FEES: (np.sum((shadow.fee - shadow.notional * real_rate)[matched]), 0.0),
        TIMING: (np.sum((side * (shadow.qty * real_mid - shadow.qty_mid))[matched]), 0.0),
        PRICE: (
            np.sum((r_pnl - (side * (shadow.qty * real_mid - shadow.notional) - shadow.notional * real_rate))[matched]),
            np.sum((real.notional - shadow.notional)[matched]),
        ),
        MISSED: (np.sum(r_pnl[missed]), np.sum(real.notional[missed])),
        INVENTED: (-np.sum(s_pnl[invented]), -np.sum(shadow.notional[invented])),
    }
    affected = {FEES: matched, TIMING: matched, PRICE: matched, MISSED: missed, INVENTED: invented}
    rows, before = [], start
    for step in STEPS:
        pnl, notional = pnl + float(changes[step][0]), notional + float(changes[step][1])
        after = _net(pnl, notional)
        orders = int(affected[step].sum())
        rows.append({"step": step, "orders": orders, "component_bps": after - before, "net_bps_after": after})
        before = after
    end = _net(float(r_pnl[matched | missed].sum()), float(real.notional[matched | missed].sum()))
    return start, end, pd.DataFrame(rows)


def calibration(p_fill: np.ndarray, filled: np.ndarray) -> tuple[pd.DataFrame, float, float]:
    """Reliability table (equal-width bins of predicted p; 1.0 in the last), Brier score and log loss."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.minimum((p_fill * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.bincount(bins, weights=p_fill, minlength=CALIBRATION_BINS) / counts
        rate = np.bincount(bins, weights=filled.astype(np.float64), minlength=CALIBRATION_BINS) / counts
    table = pd.DataFrame(
        {"low": edges[:-1], "high": edges[1:], "orders": counts, "mean_predicted": mean_p, "fill_rate": rate}
    )
    if not len(p_fill):
        return table, float("nan"), float("nan")
    y = filled.astype(np.float64)
    p = np.clip(p_fill, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    brier = float(np.mean((p_fill - y) ** 2))
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return table, brier, log_loss


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def reconcile(
    orders: pd.DataFrame,
    shadow_fills: pd.DataFrame,
    real_fills: pd.DataFrame,
    ticks: pd.DataFrame,
    params: StrategyParams,
) -> Reconciliation:
    """Match the bot's orders with the shadow's outcome and the real fills.

    ``orders``: the order engine's per-order table (:data:`ORDER_COLUMNS`, one row per client order id);
    ``shadow_fills``: its fills (the simulator's fill table plus ``order_id``); ``real_fills``: the bot's fills as
    ``read_fills`` returns them (several per order for partial fills; ``order_id`` "" when the bot sent none);
    ``ticks``: the partition's ticks (sorted by ``ts_server``, starting before the first fill) for the markout
    mids at ``params.markout_horizon_s``. Raises ValueError naming the first problem with an input.

    Real fills of an order id that is not among ``orders`` (the bot never placed it, or placed it in another
    partition) and those without an id are left out of the match and counted (``unplaced_fills``,
    ``unattributed_fills``), never dropped silently.
    """
    _validated_orders(orders, shadow_fills)
    _missing(real_fills, REAL_FILL_COLUMNS, "real fills")
    validate_fills(real_fills, ticks)
    notes: list[str] = []
    ids = pd.Index(orders["order_id"])
    real_at = ids.get_indexer(real_fills["order_id"])
    no_id = (real_fills["order_id"] == "").to_numpy()
    unplaced = (real_at < 0) & ~no_id
    if unplaced.any():
        notes.append(f"{int(unplaced.sum())} real fills name order ids that are not among the orders: left out")
    if no_id.any():
        notes.append(f"{int(no_id.sum())} real fills carry no order id: left out")
    real = real_fills[real_at >= 0]
    real_at = real_at[real_at >= 0]
    n = len(orders)
    side = orders["side"].to_numpy(dtype=np.float64)
    real_side = real["side"].map({"buy": 1.0, "sell": -1.0}).to_numpy(dtype=np.float64)
    wrong_side = real_side != side[real_at]
    if wrong_side.any():
        order_id = real["order_id"].iloc[int(np.argmax(wrong_side))]
        raise ValueError(f"real fills: a fill of order {order_id!r} is on the other side than the order")

    shadow_at = ids.get_indexer(shadow_fills["order_id"])
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    mid = (ticks["bid"].to_numpy(dtype=np.float64) + ticks["ask"].to_numpy(dtype=np.float64)) / 2
    horizon = params.markout_horizon_s
    shadow_mid = markout_mids(ts, mid, shadow_fills["ts"].to_numpy(dtype=np.int64), horizon)
    real_mid = markout_mids(ts, mid, real["ts"].to_numpy(dtype=np.int64), horizon)
    unmarked = int(np.isnan(shadow_mid).sum() + np.isnan(real_mid).sum())
    if unmarked:
        notes.append(f"{unmarked} fills within {horizon:g} s of the last tick have no markout: not in net_bps")

    real_qty = np.bincount(real_at, weights=real["qty"].to_numpy(dtype=np.float64), minlength=n)
    real_notional = np.bincount(real_at, weights=(real["price"] * real["qty"]).to_numpy(dtype=np.float64), minlength=n)
    first = np.full(n, -1, dtype=np.int64)
    by_order = real.assign(at=real_at).groupby("at")["ts"].min()
    first[by_order.index.to_numpy()] = by_order.to_numpy(dtype=np.int64)
    shadow_qty = orders["filled_qty"].to_numpy(dtype=np.float64)
    shadow_first = orders["first_fill_ts"].to_numpy(dtype=np.int64)
    shadow_filled, real_filled = shadow_qty > 0, real_qty > 0
    group = np.select(
        [shadow_filled & real_filled, shadow_filled, real_filled], [BOTH, SHADOW_ONLY, REAL_ONLY], default=NEITHER
    )
    both = group == BOTH
    with np.errstate(divide="ignore", invalid="ignore"):
        real_vwap = np.where(real_filled, real_notional / real_qty, np.nan)
    table = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(dtype=object),
            "side": orders["side"].to_numpy(dtype=np.int8),
            "price": orders["price"].to_numpy(dtype=np.float64),
            "qty": orders["qty"].to_numpy(dtype=np.float64),
            "market": orders["market"].to_numpy(dtype=bool),
            "decision_ts": orders["decision_ts"].to_numpy(dtype=np.int64),
            "status": orders["status"].to_numpy(dtype=object),
            "p_fill": orders["p_fill"].to_numpy(dtype=np.float64),
            "shadow_filled_qty": shadow_qty,
            "shadow_first_fill_ts": shadow_first,
            "shadow_vwap": orders["fill_vwap"].to_numpy(dtype=np.float64),
            "shadow_fee": orders["fee"].to_numpy(dtype=np.float64),
            "real_fills": np.bincount(real_at, minlength=n),
            "real_filled_qty": real_qty,
            "real_first_fill_ts": first,
            "real_vwap": real_vwap,
            "real_fee": np.bincount(real_at, weights=real["fee"].to_numpy(dtype=np.float64), minlength=n),
            "group": group,
            "fill_time_error_ms": np.where(both, (first - shadow_first) / _NS_PER_MS, np.nan),
            "qty_error": real_qty - shadow_qty,
        }
    )

    confusion = (
        table.groupby("group")[["qty", "shadow_filled_qty", "real_filled_qty"]]
        .sum()
        .reindex(list(GROUPS), fill_value=0.0)
        .rename(columns={"qty": "order_qty"})
    )
    confusion.insert(0, "orders", table["group"].value_counts().reindex(list(GROUPS), fill_value=0))
    confusion = confusion.rename_axis("group").reset_index()
    n_both, n_shadow, n_real = int(both.sum()), int(shadow_filled.sum()), int(real_filled.sum())
    precision, recall = _ratio(n_both, n_shadow), _ratio(n_both, n_real)
    if not n_shadow:
        notes.append("precision undefined: the shadow filled none of the orders")
    if not n_real:
        notes.append("recall undefined: none of the orders really filled")

    errors = table["fill_time_error_ms"][both]
    fill_time = pd.DataFrame(
        {"quantile": FILL_TIME_QUANTILES, "error_ms": errors.quantile(list(FILL_TIME_QUANTILES)).to_numpy()}
    )
    qty_error = table["qty_error"][both].to_numpy(dtype=np.float64)
    equal_qty = np.isclose(real_qty[both], shadow_qty[both], rtol=1e-9, atol=0.0)  # partial sums round
    if not n_both:
        notes.append("fill-time and quantity errors undefined: no order filled in both")

    shadow_marked = _marked(shadow_fills, shadow_at, shadow_mid, n)
    real_marked = _marked(real, real_at, real_mid, n)
    shadow_net, real_net, waterfall = _waterfall(side, shadow_marked, real_marked)
    if np.isnan(shadow_net) or np.isnan(real_net):
        notes.append("net_bps gap undefined: a side has no fill with a known markout")

    markout_rows = []
    for name, source, marked in (
        (BOTH, "shadow", shadow_marked),
        (BOTH, "real", real_marked),
        (SHADOW_ONLY, "shadow", shadow_marked),
        (REAL_ONLY, "real", real_marked),
    ):
        rows = group == name
        notional, fee = float(marked.notional[rows].sum()), float(marked.fee[rows].sum())
        markout = float((side * (marked.qty_mid - marked.notional))[rows].sum())
        markout_rows.append(
            {
                "group": name,
                "fills_of": source,
                "notional": notional,
                "markout_bps": _net(markout, notional),
                "fee_bps": _net(fee, notional),
                "net_bps": _net(markout - fee, notional),
            }
        )

    reliability, brier, log_loss = calibration(table["p_fill"].to_numpy(dtype=np.float64), real_filled)
    return Reconciliation(
        orders=table,
        confusion=confusion,
        precision=precision,
        recall=recall,
        fill_time=fill_time,
        fill_time_median_ms=float(errors.median()) if n_both else float("nan"),
        fill_time_p90_ms=float(errors.quantile(0.9)) if n_both else float("nan"),
        fill_time_mean_ms=float(errors.mean()) if n_both else float("nan"),
        qty_error_abs_mean=float(np.abs(qty_error).mean()) if n_both else float("nan"),
        qty_equal_share=float(equal_qty.mean()) if n_both else float("nan"),
        markouts=pd.DataFrame(markout_rows),
        shadow_net_bps=shadow_net,
        real_net_bps=real_net,
        waterfall=waterfall,
        calibration=reliability,
        brier=brier,
        log_loss=log_loss,
        unplaced_fills=int(unplaced.sum()),
        unplaced_qty=float(real_fills["qty"][unplaced].sum()),
        unattributed_fills=int(no_id.sum()),
        notes=tuple(notes),
    )
