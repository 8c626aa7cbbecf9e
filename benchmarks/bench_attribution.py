"""Attribution on a million journeys: speed of the aggregation to unique paths, the
rules, the Markov chain and Shapley over channel sets; then every method's error against
the simulator's true incremental channel shares.

    python benchmarks/bench_attribution.py [--journeys 1000000] [--channels 8] [--seeds 3]
    python benchmarks/bench_attribution.py --outside     # the tests' independently written journeys

Journeys are drawn at random here (one to eight touches over eight channels, each
channel with its own pull toward conversion); what matters for speed is their number and
the number of unique paths they make, not whether the credit is right (the simulator's
journeys and their truth judge that).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from custintel.measure.attribution import (
    RULES,
    SEPARATOR,
    calibrated,
    markov,
    rule_based,
    shapley,
    shares,
)

CHANNELS = ("search", "social", "display", "affiliate", "email", "direct", "organic", "video")


def journeys(n: int, channels: int, seed: int = 0) -> pd.DataFrame:
    """One row per touch: journey, step, channel; and whether each journey converted."""
    rng = np.random.default_rng(seed)
    names = np.array(CHANNELS[:channels])
    length = np.minimum(rng.geometric(0.45, n), 8)
    journey = np.repeat(np.arange(n), length)
    step = np.concatenate([np.arange(k) for k in length])
    popularity = rng.dirichlet(np.ones(channels) * 2)
    channel = rng.choice(channels, size=journey.size, p=popularity)
    pull = np.linspace(-0.6, 0.6, channels)
    logit = -3.2 + np.bincount(journey, weights=pull[channel], minlength=n)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    touches = pd.DataFrame({"journey": journey, "step": step, "channel": names[channel]})
    return touches, converted


def aggregate(touches: pd.DataFrame, converted: np.ndarray) -> pd.DataFrame:
    """Unique paths with their conversions and non-converting journeys, in DuckDB (where
    the journeys of a project live)."""
    import duckdb

    outcome = pd.DataFrame({"journey": np.arange(len(converted)), "c": converted})
    con = duckdb.connect()
    con.register("touches", touches)
    con.register("outcome", outcome)
    return con.sql(
        f"""
        SELECT path, sum(c::INT)::DOUBLE AS conversions, sum(1 - c::INT)::DOUBLE AS nulls
        FROM (SELECT journey, string_agg(channel, '{SEPARATOR}' ORDER BY step) AS path
              FROM touches GROUP BY journey)
        JOIN outcome USING (journey)
        GROUP BY path ORDER BY path
        """
    ).df()


def peer(paths: pd.DataFrame, ours: pd.Series, last: pd.Series) -> None:
    """The published ChannelAttribution package (GPL-3.0-or-later; installed by hand in
    a scratch environment, never a dependency) on the same unique paths, when present."""
    try:
        from ChannelAttribution import heuristic_models, markov_model
    except ImportError:
        print("  (ChannelAttribution not installed: no side-by-side run)")
        return
    start = time.perf_counter()
    m = markov_model(
        paths, "path", "conversions", var_null="nulls", order=1, sep=SEPARATOR, verbose=False
    )
    seconds = time.perf_counter() - start
    theirs = m.set_index("channel_name").total_conversions.sort_index()
    gap = (theirs / theirs.sum() - ours / ours.sum()).abs().max()
    print(
        f"  ChannelAttribution markov_model {seconds:7.2f} s; largest difference in "
        f"channel shares from ours {100 * gap:.2f} points (it simulates the chain)"
    )
    start = time.perf_counter()
    h = heuristic_models(paths, "path", "conversions", sep=SEPARATOR)
    seconds = time.perf_counter() - start
    lt = h.set_index("channel_name").last_touch.sort_index()
    print(
        f"  ChannelAttribution heuristics  {seconds:7.2f} s; last touch equal to ours: "
        f"{bool(np.allclose(lt.to_numpy(), last.reindex(lt.index).to_numpy()))}"
    )


def truth(visitors: int, seeds: int) -> None:
    """Each method's mean absolute error in channel shares (points) and the credit it
    gives the three channels without effect, on simulated journeys with a known truth;
    the paths built from the web events by the warehouse code (Ibis on DuckDB)."""
    import ibis

    from custintel.measure.journeys import paths, sessions
    from custintel.simulate.journeys import JourneyConfig, simulate_journeys

    results: dict[str, list[tuple[float, float]]] = {}
    for seed in range(seeds):
        start = time.perf_counter()
        j = simulate_journeys(JourneyConfig(visitors=visitors), seed=seed)
        simulated = time.perf_counter() - start
        con = ibis.duckdb.connect()
        events = j.events.assign(customer_ref=pd.Series([None] * len(j.events), dtype="string"))
        start = time.perf_counter()
        p = paths(sessions(con.create_table("events", events))).to_pandas()
        built = time.perf_counter() - start
        t = j.truth.set_index("channel").share
        null = t.index[t == 0]
        start = time.perf_counter()
        cal = calibrated(p, j.experiments)
        fitted = time.perf_counter() - start
        credit = {r: rule_based(p, r) for r in RULES}
        credit |= {"markov": markov(p)[0], "shapley": shapley(p)}
        credit["fitted model (Shapley), uncalibrated"] = cal.model_credit.clip(lower=0)
        credit["calibrated"] = cal.credit
        credit["calibrated, no base channels"] = calibrated(p, j.experiments, base=()).credit
        for name, c in credit.items():
            s = shares(c).reindex(t.index, fill_value=0.0)
            err = 100 * float((s - t).abs().mean())
            results.setdefault(name, []).append((err, 100 * float(s[null].sum())))
        print(
            f"seed {seed}: {j.visitors:,} visitors with a session, {len(j.events):,} events, "
            f"{j.converted:,} purchases, {len(p):,} unique paths; simulated {simulated:.1f} s, "
            f"paths built {built:.1f} s, calibrated model {fitted:.1f} s"
        )
    print(f"error against the true incremental shares, mean over {seeds} seeds (max):")
    print(f"  {'method':40s} {'error, pts':>16s} {'credit to no-effect channels':>30s}")
    for name, r in results.items():
        e = np.array([x[0] for x in r])
        n = np.array([x[1] for x in r])
        print(f"  {name:40s} {e.mean():7.2f} ({e.max():5.2f}) {n.mean():20.1f} % ({n.max():4.1f})")


def outside(people: int, seed: int = 0) -> None:
    """The calibrated method and the baselines on the tests' independently written
    journeys (tests/outside/journeys.py), aggregated by the warehouse code."""
    import sys
    from pathlib import Path

    import ibis

    from custintel.measure.journeys import DEFAULT_CHANNELS, paths, reach, sessions

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from outside.journeys import MEDIUM_TO_CHANNEL, generate

    o = generate(people, seed=seed)
    names = {"visitor": "anonymous_id", "visit": "session_id", "hit_time": "event_ts",
             "hit": "event_type", "src": "utm_source", "med": "utm_medium"}  # fmt: skip
    events = o.events.rename(columns=names)
    events["customer_ref"] = pd.Series([None] * len(events), dtype="string")
    con = ibis.duckdb.connect()
    s = sessions(
        con.create_table("events", events), mapping={**DEFAULT_CHANNELS, **MEDIUM_TO_CHANNEL}
    )
    p = paths(s).to_pandas()
    people_touched = reach(s).to_pandas().set_index("channel").people
    cal = calibrated(p, o.experiments, base=("direct",), reach=people_touched)
    credit = {r: rule_based(p, r) for r in RULES}
    credit |= {"markov": markov(p)[0], "shapley": shapley(p), "calibrated": cal.credit}
    null = o.truth.index[o.truth == 0]
    print(f"outside journeys: {people:,} people, {len(events):,} events, {o.purchases:,} purchases")
    for name, c in credit.items():
        sh = shares(c).reindex(o.truth.index, fill_value=0.0)
        err = 100 * float((sh - o.truth).abs().mean())
        print(
            f"  {name:12s} error {err:6.2f} pts, to no-effect channels {100 * sh[null].sum():5.1f} %"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--journeys", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3, help="truth runs (0: speed only)")
    ap.add_argument("--outside", action="store_true", help="only the outside journeys")
    args = ap.parse_args()
    if args.outside:
        outside(args.journeys)
        return
    touches, converted = journeys(args.journeys, args.channels)
    timings = {}
    start = time.perf_counter()
    paths = aggregate(touches, converted)
    timings["aggregate to unique paths"] = time.perf_counter() - start
    for rule in ("first", "last", "linear", "position", "time_decay"):
        start = time.perf_counter()
        rule_based(paths, rule)
        timings[f"rule: {rule}"] = time.perf_counter() - start
    start = time.perf_counter()
    markov(paths)
    timings["markov (removal effects)"] = time.perf_counter() - start
    start = time.perf_counter()
    shapley(paths)
    timings["shapley (exact, 2^n sets)"] = time.perf_counter() - start
    print(
        f"{args.journeys:,} journeys, {len(touches):,} touches, {int(converted.sum()):,} "
        f"conversions, {len(paths):,} unique paths, {args.channels} channels"
    )
    for k, v in timings.items():
        print(f"  {k:30s} {v:7.2f} s")
    peer(paths, markov(paths)[0], rule_based(paths, "last"))
    both = timings["aggregate to unique paths"] + timings["markov (removal effects)"]
    print(f"  aggregation + markov           {both:7.2f} s")
    print(
        f"  aggregation + time decay       "
        f"{timings['aggregate to unique paths'] + timings['rule: time_decay']:7.2f} s"
    )
    if args.seeds:
        truth(args.journeys, args.seeds)


if __name__ == "__main__":
    main()
