"""Allocation: which surviving candidates become actions, under caps, budgets and stock.

Candidates arrive with the expected incremental value of the action (its priority) and
its expected cost. :func:`greedy` takes them best first (by value per cost when a budget
applies, by value otherwise) and accepts each that still fits: a free slot for the
customer on the channel and overall, the caps left after the contact history, and every
budget and inventory it draws on. It never spends over a budget. Control-group customers
are chosen by exactly the same rule, as if they were treated, but spend nothing, so the
control group is the treated group's mirror.

:func:`exact` solves the same problem as an integer program (scipy's ``milp`` on HiGHS)
to measure how far the greedy is from the optimum.

The greedy loop is sequential (each acceptance changes what fits next), so it is
compiled with numba: a Python loop over 30 million candidates would take minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np

ACCEPTED, ARBITRATION, CAP, BUDGET, INVENTORY = 0, 1, 2, 3, 4
STATUS_RULE = {ARBITRATION: "arbitration", CAP: "frequency_cap_in_run", BUDGET: "budget",
               INVENTORY: "inventory"}  # fmt: skip
UNLIMITED = np.inf


@dataclass
class Problem:
    """Surviving candidates (one entry each) and the limits they share.

    ``customer`` indexes customers (0..n-1), ``offer`` and ``channel`` index the
    campaign's offers and channels. ``channel_caps[c, ch]`` and ``total_caps[c]`` are the
    contacts the caps still allow customer c after the contact history; ``per_channel``
    and ``per_customer`` the actions one run may give a customer (arbitration). Budgets
    are np.inf when unlimited, inventory a large number.
    """

    customer: np.ndarray  # int64
    offer: np.ndarray  # int64
    channel: np.ndarray  # int64
    value: np.ndarray  # float64, expected incremental value
    cost: np.ndarray  # float64, expected cost if treated
    control: np.ndarray  # bool per customer
    channel_caps: np.ndarray  # int64 [customers, channels]
    total_caps: np.ndarray  # int64 [customers]
    offer_budget: np.ndarray  # float64 [offers]
    offer_inventory: np.ndarray  # int64 [offers]
    channel_budget: np.ndarray  # float64 [channels]
    budget: float = UNLIMITED
    per_channel: int = 1
    per_customer: int = 1

    @property
    def budgeted(self) -> bool:
        return bool(
            np.isfinite(self.offer_budget).any()
            or np.isfinite(self.channel_budget).any()
            or np.isfinite(self.budget)
        )

    def treated_only(self) -> Problem:
        """The candidates of the customers not held out. The control group spends and
        stocks nothing, so the run's treated actions are exactly the greedy's on this
        problem: it is the one the prices, the bound and the optimum are for."""
        keep = ~self.control[self.customer]
        return replace(
            self, customer=self.customer[keep], offer=self.offer[keep],
            channel=self.channel[keep], value=self.value[keep], cost=self.cost[keep],
            control=np.zeros_like(self.control),
        )  # fmt: skip

    def order(self, by: str = "value") -> np.ndarray:
        """Best first, by ``value`` or by ``ratio`` (value per cost); ties by position.
        :func:`~custintel.campaigns.decide.decide` lists candidates by customer id, then
        offer and channel in the config's order, so its results never depend on the
        order rows arrived in."""
        key = self.value / np.maximum(self.cost, 1e-12) if by == "ratio" else self.value
        return _best_first(key)


def _best_first(key: np.ndarray) -> np.ndarray:
    """Positions by descending key, ties by position (numpy's stable sort; ties are
    common: an offer's value is the same on each of its channels)."""
    return np.argsort(-key, kind="stable")


@numba.njit(cache=False)  # no cache file: the package folder may be read-only
def _greedy(order, customer, offer, channel, cost, control, channel_caps, total_caps,
            per_channel, per_customer, offer_budget, offer_inventory, channel_budget,
            budget):  # fmt: skip
    status = np.empty(len(customer), dtype=np.int8)
    used_ch = np.zeros(channel_caps.shape, dtype=np.int64)
    used = np.zeros(len(total_caps), dtype=np.int64)
    ob = offer_budget.copy()
    inv = offer_inventory.copy()
    cb = channel_budget.copy()
    left = budget
    for i in order:
        c, o, ch, k = customer[i], offer[i], channel[i], cost[i]
        if used_ch[c, ch] >= per_channel or used[c] >= per_customer:
            status[i] = 1
            continue
        if used_ch[c, ch] >= channel_caps[c, ch] or used[c] >= total_caps[c]:
            status[i] = 2
            continue
        if ob[o] < k or cb[ch] < k or left < k:
            status[i] = 3
            continue
        if inv[o] <= 0:
            status[i] = 4
            continue
        status[i] = 0
        used_ch[c, ch] += 1
        used[c] += 1
        if not control[c]:
            ob[o] -= k
            cb[ch] -= k
            left -= k
            inv[o] -= 1
    return status


def greedy(p: Problem, *, priced: bool = True) -> np.ndarray:
    """See :func:`allocate`; the status alone."""
    return allocate(p, priced=priced).status


@dataclass
class Allocation:
    """The greedy's status per candidate, the orders its passes took (they do not depend
    on who is held out) and the bound and prices when it priced."""

    status: np.ndarray
    orders: list[np.ndarray]
    bound: tuple[float, Prices] | None


def allocate(p: Problem, *, priced: bool = True) -> Allocation:
    """Status of each candidate: ACCEPTED, or why not (ARBITRATION, CAP, BUDGET,
    INVENTORY).

    Under a budget, two passes, and the one with the most total value wins: best value
    first, and best *priced* value first, the value less each budget's and stock's
    shadow price times what the action draws on it, with the prices of :func:`prices`
    (without prices: best value per cost first, the classic guard for knapsack
    greedies, which the priced pass makes redundant). The priced pass is what comes within a fraction of a percent of
    the optimum when several budgets bind at once. The prices are those of the treated
    (what the budgets really pay for); every candidate, held out or not, is ordered by
    the same prices, so the control group still mirrors the treated."""
    if len(p.customer) == 0:
        return Allocation(np.empty(0, dtype=np.int8), [], None)
    orders = [p.order("value")]
    top = None
    if p.budgeted:
        if priced:  # the priced pass makes the value-per-cost pass redundant
            top = prices(p)
            orders.append(_best_first(_reduced(p, top[1])))
        else:
            orders.append(p.order("ratio"))
    return Allocation(best_pass(p, orders), orders, top)


def best_pass(p: Problem, orders: list[np.ndarray]) -> np.ndarray:
    """The greedy along each order; the status of the one with the most value."""
    best, best_value = None, -np.inf
    caps = (p.channel_caps.astype(np.int64), p.total_caps.astype(np.int64))
    for order in orders:
        status = _greedy(
            order, p.customer, p.offer, p.channel, p.cost, p.control, *caps, p.per_channel,
            p.per_customer, p.offer_budget, p.offer_inventory.astype(np.int64),
            p.channel_budget, float(p.budget),
        )  # fmt: skip
        value = float(p.value[status == ACCEPTED].sum())
        if value > best_value:
            best, best_value = status, value
    return best  # type: ignore[return-value]


@dataclass(frozen=True)
class Prices:
    """Shadow prices of the limits that couple customers: per offer budget, per channel
    budget, the campaign budget (all per unit of cost) and per offer unit of stock."""

    offer_budget: np.ndarray
    channel_budget: np.ndarray
    budget: float
    inventory: np.ndarray


def _limits(p: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which rows bind at all (finite), per kind."""
    return (
        np.isfinite(p.offer_budget),
        np.isfinite(p.channel_budget),
        np.array([np.isfinite(p.budget)]),
        p.offer_inventory < 10**17,
    )


def _unpack(p: Problem, x: np.ndarray) -> Prices:
    ob, cb, b, inv = _limits(p)
    parts, at = [], 0
    for mask in (ob, cb, b, inv):
        full = np.zeros(len(mask))
        full[mask] = x[at : at + mask.sum()]
        at += int(mask.sum())
        parts.append(full)
    return Prices(parts[0], parts[1], float(parts[2][0]), parts[3])


def _reduced(p: Problem, lam: Prices) -> np.ndarray:
    per_cost = lam.offer_budget[p.offer] + lam.channel_budget[p.channel] + lam.budget
    return p.value - p.cost * per_cost - lam.inventory[p.offer]


@numba.njit(cache=False)  # no cache file: the package folder may be read-only
def _dual_pass(starts, customer, offer, channel, value, cost, lam_offer, lam_channel, lam_budget,
               lam_stock, channel_caps, total_caps, per_channel, per_customer, skip):  # fmt: skip
    """One evaluation of the dual: every customer not skipped (held out) takes their
    best actions by priced value within their slots (greedy is optimal here: the slots form a laminar matroid).
    The candidates come grouped by customer, ``starts`` marking each group. Returns the
    priced value taken and what it draws on each offer's budget and stock, each
    channel's budget and the campaign's."""
    n_off, n_ch = len(lam_offer), len(lam_channel)
    spent_offer = np.zeros(n_off)
    units = np.zeros(n_off)
    spent_channel = np.zeros(n_ch)
    spent = 0.0
    total = 0.0
    used_ch = np.zeros(channel_caps.shape[1], dtype=np.int64)
    reduced = np.empty(len(value))
    for i in range(len(value)):
        o, ch = offer[i], channel[i]
        reduced[i] = (
            value[i] - cost[i] * (lam_offer[o] + lam_channel[ch] + lam_budget) - lam_stock[o]
        )
    taken = np.zeros(len(value), dtype=np.bool_)
    for b in range(len(starts) - 1):
        lo, hi = starts[b], starts[b + 1]
        c = customer[lo]
        if skip[c]:
            continue
        limit = min(per_customer, total_caps[c])
        for i in range(lo, hi):
            used_ch[channel[i]] = 0
        count = 0
        while count < limit:
            best, best_value = -1, 0.0
            for i in range(lo, hi):
                ch = channel[i]
                if taken[i] or reduced[i] <= best_value:
                    continue
                if used_ch[ch] >= min(per_channel, channel_caps[c, ch]):
                    continue
                best, best_value = i, reduced[i]
            if best < 0:
                break
            taken[best] = True
            used_ch[channel[best]] += 1
            count += 1
            total += best_value
            o = offer[best]
            spent_offer[o] += cost[best]
            units[o] += 1.0
            spent_channel[channel[best]] += cost[best]
            spent += cost[best]
    return total, spent_offer, spent_channel, spent, units


SAMPLE_CANDIDATES = 1_000_000
"""Above this many candidates the prices are found on a sample of customers (with the
limits scaled to it): prices per unit of budget hardly depend on the population's size,
and each step of the search is a pass over every candidate."""


def _dual(p: Problem):  # type: ignore[no-untyped-def]
    """The dual function of a problem: prices -> (value, subgradient), and its limits."""
    ob, cb, b, inv = _limits(p)
    limits = np.r_[p.offer_budget[ob], p.channel_budget[cb], np.array([p.budget])[b],
                   p.offer_inventory[inv].astype(float)]  # fmt: skip
    if len(p.customer) < 2 or (np.diff(p.customer) >= 0).all():  # grouped already
        arrays = (p.customer, p.offer, p.channel, p.value, p.cost)
    else:
        order = np.argsort(p.customer, kind="stable")
        arrays = (p.customer[order], p.offer[order], p.channel[order], p.value[order],
                  p.cost[order])  # fmt: skip
    cust = arrays[0]
    starts = (
        np.r_[0, np.flatnonzero(np.diff(cust)) + 1, len(cust)]
        if len(cust)
        else np.zeros(1, np.int64)
    )
    caps = (p.channel_caps.astype(np.int64), p.total_caps.astype(np.int64))

    def dual(x: np.ndarray) -> tuple[float, np.ndarray]:
        lam = _unpack(p, x)
        total, spent_offer, spent_channel, spent, units = _dual_pass(
            starts, *arrays, lam.offer_budget, lam.channel_budget, lam.budget, lam.inventory,
            *caps, p.per_channel, p.per_customer, p.control,
        )  # fmt: skip
        used = np.r_[spent_offer[ob], spent_channel[cb], np.array([spent])[b], units[inv]]
        return float(total + x @ limits), limits - used

    return dual, limits


def _sample(p: Problem, size: int) -> Problem:
    """The candidates of a random share of the treated customers (fixed seed), every
    limit scaled by that share."""
    n = len(p.total_caps)
    pick = (np.random.default_rng(0).random(n) < size / len(p.customer)) & ~p.control
    share = pick.sum() / max((~p.control).sum(), 1)
    keep = pick[p.customer]
    inv = np.where(
        p.offer_inventory < 10**17, np.floor(p.offer_inventory * share), p.offer_inventory
    )
    return replace(
        p, customer=p.customer[keep], offer=p.offer[keep], channel=p.channel[keep],
        value=p.value[keep], cost=p.cost[keep], control=np.zeros_like(p.control),
        offer_budget=p.offer_budget * share,
        channel_budget=p.channel_budget * share, budget=p.budget * share,
        offer_inventory=inv.astype(np.int64),
    )  # fmt: skip


def prices(p: Problem, iterations: int = 80, tolerance: float = 1e-4) -> tuple[float, Prices]:
    """The Lagrangian dual of the budget and stock rows over the treated customers (see
    :meth:`Problem.treated_only`), minimised by the level method, and the prices at its
    minimum.

    The dual's value at any prices is an upper bound on the best total value any
    allocation can reach; at its minimum it equals the optimum of the linear relaxation,
    which with a handful of coupling rows is within a few candidates' value of the
    integer optimum, so a greedy within 1 % of it is within 1 % of the optimum. Each step
    prices the candidates, lets every customer take their best priced actions (a pass
    over the candidates, compiled), and adds a cutting plane; the level method steps
    only part of the way to the cutting-plane model's minimum, which converges in tens
    of steps where plain cutting planes take hundreds. Above
    :data:`SAMPLE_CANDIDATES` the search runs on a sample and the bound is the full
    dual at the prices found (still a bound, a little looser). Written here because the
    dual has a few variables and millions of terms, a shape no solver in our
    dependencies takes directly; HiGHS on the full linear relaxation took minutes on
    100,000 x 10."""
    from scipy.optimize import linprog

    if len(p.customer) > SAMPLE_CANDIDATES:
        _, lam = prices(_sample(p, SAMPLE_CANDIDATES), iterations, tolerance)
        dual, _ = _dual(p)
        ob, cb, b, inv = _limits(p)
        x = np.r_[lam.offer_budget[ob], lam.channel_budget[cb], np.array([lam.budget])[b],
                  lam.inventory[inv]]  # fmt: skip
        return dual(x)[0], lam
    dual, limits = _dual(p)
    m = len(limits)
    if len(p.customer) == 0:
        return 0.0, _unpack(p, np.zeros(m))
    if m == 0:
        return dual(np.zeros(0))[0], _unpack(p, np.zeros(0))
    # No price above the best value per unit a row's candidates offer: beyond it every
    # candidate that draws on the row is priced out, and the dual only grows.
    ob, cb, b, inv = _limits(p)
    paying = p.cost > 0
    ratio = np.where(paying, p.value / np.where(paying, p.cost, 1.0), 0.0)
    per_unit = np.r_[
        [ratio[p.offer == o].max(initial=0) for o in np.flatnonzero(ob)],
        [ratio[p.channel == c].max(initial=0) for c in np.flatnonzero(cb)],
        [ratio.max(initial=0)] * int(b.sum()),
        [p.value[p.offer == o].max(initial=0) for o in np.flatnonzero(inv)],
    ]
    box = [(0.0, float(t)) for t in per_unit]
    cuts_g, cuts_b = [], []
    x = np.zeros(m)
    best, best_x = np.inf, x
    for _ in range(iterations):
        value, g = dual(x)
        if value < best:
            best, best_x = value, x
        cuts_g.append(g)
        cuts_b.append(float(g @ x - value))  # value + g (y - x) <= t
        a = np.array(cuts_g)
        model = linprog(
            np.r_[np.zeros(m), 1.0], A_ub=np.c_[a, -np.ones(len(a))], b_ub=np.array(cuts_b),
            bounds=[*box, (None, None)], method="highs",
        )  # fmt: skip
        if model.x is None:
            break
        low = float(model.x[m])
        if best - low <= tolerance * max(abs(best), 1.0):
            break
        level = low + 0.3 * (best - low)
        # the point nearest (in the max norm) the best so far whose model is below the level
        step = linprog(
            np.r_[np.zeros(m), 1.0],
            A_ub=np.r_[np.c_[a, np.zeros(len(a))], np.c_[np.eye(m), -np.ones(m)],
                       np.c_[-np.eye(m), -np.ones(m)]],
            b_ub=np.r_[level + np.array(cuts_b), best_x, -best_x],
            bounds=[*box, (0, None)], method="highs",
        )  # fmt: skip
        x = step.x[:m] if step.x is not None else model.x[:m]
    return best, _unpack(p, best_x)


def bound(p: Problem, iterations: int = 80) -> float:
    """An upper bound on the best total value (see :func:`prices`)."""
    return prices(p, iterations)[0]


def exact(p: Problem, time_limit: float = 120.0, *, proven: bool = False) -> np.ndarray | None:
    """The optimum with every candidate spending, or None if HiGHS found no solution in
    time (with ``proven``, also None when the best it found is not proven optimal). An optimum has no order for a control group to mirror: held-out customers
    spend like the others here (compare a run on :meth:`Problem.treated_only`)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, vstack

    n = len(p.customer)
    if n == 0:
        return np.empty(0, dtype=bool)
    rows, lower, upper = [], [], []
    ones = np.ones(n)
    idx = np.arange(n)

    def group(keys: np.ndarray, size: int, weights: np.ndarray, limit: np.ndarray) -> None:
        rows.append(csr_matrix((weights, (keys, idx)), shape=(size, n)))
        lower.append(np.full(size, -np.inf))
        upper.append(limit)

    n_cust, n_ch = p.channel_caps.shape
    slot = p.customer * n_ch + p.channel
    group(slot, n_cust * n_ch, ones, np.minimum(p.channel_caps, p.per_channel).reshape(-1) * 1.0)
    group(p.customer, n_cust, ones, np.minimum(p.total_caps, p.per_customer) * 1.0)
    spend = p.cost
    group(p.offer, len(p.offer_budget), spend, p.offer_budget)
    group(p.channel, len(p.channel_budget), spend, p.channel_budget)
    group(np.zeros(n, dtype=np.int64), 1, spend, np.array([p.budget]))
    group(p.offer, len(p.offer_inventory), ones, p.offer_inventory.astype(float))
    a = vstack(rows).tocsr()
    lo, hi = np.concatenate(lower), np.concatenate(upper)
    keep = np.isfinite(hi)  # an unlimited row constrains nothing
    result = milp(
        c=-p.value,
        constraints=LinearConstraint(a[keep], lo[keep], hi[keep]),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "disp": False},
    )
    if result.x is None or (proven and result.status != 0):
        return None
    return result.x > 0.5


EXACT_LIMIT = 5_000  # candidates: HiGHS solves it in about a second


def compare(p: Problem, run: Allocation, time_limit: float = 5.0) -> dict[str, object]:
    """The treated actions against the optimum, for the report: their total expected
    value, the Lagrangian bound above every allocation of the treated customers, and
    (up to :data:`EXACT_LIMIT` candidates) the exact optimum from HiGHS."""
    import time

    bound = run.bound
    keep = ~p.control[p.customer]
    taken = (run.status == ACCEPTED) & keep
    value = float(p.value[taken].sum())
    out: dict[str, object] = {
        "candidates": int(keep.sum()),
        "value": value,
        "spend": float(p.cost[taken].sum()),
        "bound": None,
        "below_bound_pct": None,
        "exact": None,
        "exact_seconds": None,
    }
    if not p.budgeted or not keep.any():
        return out
    top = bound[0] if bound is not None else prices(p)[0]
    out["bound"] = top
    out["below_bound_pct"] = 100 * (1 - value / top) if top > 0 else 0.0
    if keep.sum() <= EXACT_LIMIT:
        p = p.treated_only()
        start = time.perf_counter()
        chosen = exact(p, time_limit, proven=True)
        if chosen is not None:
            out["exact"] = float(p.value[chosen].sum())
            out["exact_seconds"] = time.perf_counter() - start
    return out
