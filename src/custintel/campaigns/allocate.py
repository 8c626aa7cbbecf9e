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

from dataclasses import dataclass

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

    def order(self, by: str = "value") -> np.ndarray:
        """Best first, by ``value`` or by ``ratio`` (value per cost); ties by customer,
        offer and channel, so the order never depends on the input's."""
        key = self.value / np.maximum(self.cost, 1e-12) if by == "ratio" else self.value
        return np.lexsort((self.channel, self.offer, self.customer, -key))


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


def greedy(p: Problem) -> np.ndarray:
    """Status of each candidate: ACCEPTED, or why not (ARBITRATION, CAP, BUDGET,
    INVENTORY).

    Under a budget, two passes: best value first, and best value per cost first; the one
    with more total value wins (value per cost alone can lose badly when the budget
    hardly binds, value alone when it binds hard; the better of the two is the classic
    guard for knapsack greedies)."""
    if len(p.customer) == 0:
        return np.empty(0, dtype=np.int8)
    orders = ["value", "ratio"] if p.budgeted else ["value"]
    best, best_value = None, -np.inf
    for by in orders:
        status = _greedy(
            p.order(by), p.customer, p.offer, p.channel, p.cost, p.control,
            p.channel_caps.astype(np.int64), p.total_caps.astype(np.int64), p.per_channel,
            p.per_customer, p.offer_budget, p.offer_inventory.astype(np.int64),
            p.channel_budget, float(p.budget),
        )  # fmt: skip
        value = float(p.value[status == ACCEPTED].sum())
        if value > best_value:
            best, best_value = status, value
    return best  # type: ignore[return-value]


def _rows(p: Problem) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The limits that couple customers (budgets, inventory), as (candidates, weights)
    per row with the row's limit; unlimited rows are left out."""
    members, weights, limits = [], [], []
    for keys, size, weight, limit in (
        (p.offer, len(p.offer_budget), p.cost, p.offer_budget),
        (p.channel, len(p.channel_budget), p.cost, p.channel_budget),
        (np.zeros(len(p.cost), dtype=np.int64), 1, p.cost, np.array([p.budget])),
        (p.offer, len(p.offer_inventory), np.ones(len(p.cost)), p.offer_inventory * 1.0),
    ):
        for r in range(size):
            if np.isfinite(limit[r]) and limit[r] < 1e17:
                at = np.flatnonzero(keys == r)
                members.append(at)
                weights.append(weight[at])
                limits.append(float(limit[r]))
    return members, weights, np.array(limits)


@numba.njit(cache=False)  # no cache file: the package folder may be read-only
def _best_subsets(order, customer, channel, reduced, channel_caps, total_caps, per_channel,
                  per_customer):  # fmt: skip
    """Each customer's best actions by reduced value within their slots (greedy is
    optimal here: the slots form a laminar matroid)."""
    take = np.zeros(len(customer), dtype=np.bool_)
    used_ch = np.zeros(channel_caps.shape, dtype=np.int64)
    used = np.zeros(len(total_caps), dtype=np.int64)
    for i in order:
        if reduced[i] <= 0:
            continue
        c, ch = customer[i], channel[i]
        if used_ch[c, ch] >= min(per_channel, channel_caps[c, ch]):
            continue
        if used[c] >= min(per_customer, total_caps[c]):
            continue
        take[i] = True
        used_ch[c, ch] += 1
        used[c] += 1
    return take


def bound(p: Problem, iterations: int = 60) -> float:
    """An upper bound on the best total value any allocation can reach (everyone
    treated): the Lagrangian dual of the budget and inventory rows, minimised by cutting
    planes. It equals the optimum of the linear relaxation, which with a handful of
    coupling rows is within a few candidates' value of the integer optimum; a greedy
    within 1 % of it is within 1 % of the optimum. Sized for millions of candidates,
    where an integer program is out of reach (HiGHS took minutes on 100,000 x 10)."""
    from scipy.optimize import linprog

    if len(p.customer) == 0:
        return 0.0
    members, weights, limits = _rows(p)
    caps = (p.channel_caps.astype(np.int64), p.total_caps.astype(np.int64))

    def dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        reduced = p.value.copy()
        for at, w, lr in zip(members, weights, lam, strict=True):
            reduced[at] -= lr * w
        order = np.lexsort((-reduced, p.customer))
        take = _best_subsets(order, p.customer, p.channel, reduced, *caps, p.per_channel,
                             p.per_customer)  # fmt: skip
        used = np.array([w[take[at]].sum() for at, w in zip(members, weights, strict=True)])
        return float(reduced[take].sum() + lam @ limits), limits - used

    m = len(limits)
    if m == 0:
        return dual(np.zeros(0))[0]
    top = np.array(
        [np.max(p.value[at] / np.maximum(w, 1e-12)) for at, w in zip(members, weights, strict=True)]
    )
    cuts_a, cuts_b = [], []
    lam = np.zeros(m)
    best = np.inf
    for _ in range(iterations):
        value, g = dual(lam)
        best = min(best, value)
        # t >= value + g (x - lam)  ->  g x - t <= g lam - value
        cuts_a.append(np.r_[g, -1.0])
        cuts_b.append(float(g @ lam - value))
        lp = linprog(
            np.r_[np.zeros(m), 1.0], A_ub=np.array(cuts_a), b_ub=np.array(cuts_b),
            bounds=[(0, t) for t in top] + [(None, None)], method="highs",
        )  # fmt: skip
        if lp.x is None:
            break
        lam = lp.x[:m]
        if best - lp.x[m] <= 1e-6 * max(abs(best), 1.0):
            break
    return best


def exact(p: Problem, time_limit: float = 120.0) -> np.ndarray | None:
    """The optimum of the same problem with everyone treated (an optimum has no order
    for a control group to mirror), or None if HiGHS found no solution in time. Compare
    it with :func:`greedy` on the same problem with ``control`` all false."""
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
    if result.x is None:
        return None
    return result.x > 0.5
