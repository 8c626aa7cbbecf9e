"""Allocation under budgets: the greedy's total expected value against the optimum.

A campaign's allocation problem with ``--customers`` customers and ``--offers`` offers on
one channel (one candidate per customer and offer), a budget per offer that buys about a
quarter of its candidates and a campaign budget that binds too. The greedy (three passes:
by value, by value per cost, by priced value) is compared with the Lagrangian bound
(= the linear relaxation's optimum, an upper bound on the integer optimum) and, with
``--lp``, with HiGHS solving the full linear relaxation (minutes at 100,000 x 10).

    python benchmarks/bench_allocation.py --customers 100000 --offers 10 [--lp]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from custintel.campaigns import allocate


def problem(n: int, offers: int, seed: int = 0) -> allocate.Problem:
    rng = np.random.default_rng(seed)
    cust = np.repeat(np.arange(n), offers)
    off = np.tile(np.arange(offers), n)
    propensity = rng.beta(2, 8, n)[cust] * rng.uniform(0.6, 1.4, n * offers)
    worth = rng.uniform(20, 80, offers)
    value = propensity * worth[off] * rng.lognormal(0, 0.3, n * offers)
    cost = rng.uniform(0.01, 0.8, offers)[off] + rng.uniform(0.5, 3, offers)[off] * propensity
    per_offer = np.bincount(off, cost, minlength=offers)
    offer_budget = 0.25 * per_offer
    return allocate.Problem(
        customer=cust, offer=off, channel=np.zeros(n * offers, dtype=np.int64), value=value,
        cost=cost, control=np.zeros(n, dtype=bool), channel_caps=np.full((n, 1), 1),
        total_caps=np.full(n, 1), offer_budget=offer_budget,
        offer_inventory=np.full(offers, 10**18), channel_budget=np.array([np.inf]),
        budget=0.15 * per_offer.sum(),
    )  # fmt: skip


def lp_optimum(p: allocate.Problem) -> float:
    """HiGHS on the full linear relaxation (one row per customer and per budget)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    n = len(p.customer)
    idx = np.arange(n)
    rows = [
        csr_matrix((np.ones(n), (p.customer, idx)), shape=(len(p.total_caps), n)),
        csr_matrix((p.cost, (p.offer, idx)), shape=(len(p.offer_budget), n)),
        csr_matrix((p.cost, (np.zeros(n, dtype=np.int64), idx)), shape=(1, n)),
    ]
    limits = np.r_[np.minimum(p.total_caps, p.per_customer), p.offer_budget, p.budget]
    res = linprog(-p.value, A_ub=vstack(rows).tocsr(), b_ub=limits, bounds=(0, 1),
                  method="highs")  # fmt: skip
    return float(-res.fun)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--offers", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lp", action="store_true", help="also solve the LP with HiGHS")
    a = ap.parse_args()
    p = problem(a.customers, a.offers, a.seed)
    allocate.greedy(problem(200, 3))  # compile
    print(f"{a.customers:,} customers x {a.offers} offers = {len(p.customer):,} candidates")
    t = time.perf_counter()
    bound, _ = allocate.prices(p)
    t_bound = time.perf_counter() - t
    print(f"Lagrangian bound {bound:,.1f} in {t_bound:.1f} s")
    for name, kw in (("value and ratio passes", {"priced": False}), ("with the priced pass", {})):
        t = time.perf_counter()
        status = allocate.greedy(p, **kw)
        took = time.perf_counter() - t
        v = float(p.value[status == 0].sum())
        spent = float(p.cost[status == 0].sum())
        print(f"greedy, {name}: {v:,.1f} ({100 * (1 - v / bound):.3f} % below the bound) "
              f"in {took:.1f} s; spent {spent:,.1f} of {p.budget:,.1f}")  # fmt: skip
    if a.lp:
        t = time.perf_counter()
        opt = lp_optimum(p)
        print(f"HiGHS linear relaxation {opt:,.1f} in {time.perf_counter() - t:.1f} s "
              f"(bound - LP = {bound - opt:,.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
