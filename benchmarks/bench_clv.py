"""BG/NBD and Gamma-Gamma at a million customers: custintel against ``lifetimes``.

    python benchmarks/bench_clv.py                       # 1,000,000 customers
    python benchmarks/bench_clv.py --customers 100000

The customers are drawn from the BG/NBD and Gamma-Gamma processes themselves (seeded,
whole days over three years, weeks as the unit), so the fitted parameters can also be
compared with the true ones. Each side runs in a fresh process on the same file:

- custintel: ``BetaGeo().fit``, ``GammaGamma().fit``, then for every customer P(alive),
  expected purchases in the next 52 weeks and expected spend per purchase;
- ``lifetimes`` 0.11.3, the archived reference, in its own virtual environment
  (created here on first use with the old pandas and numpy it needs; it is not a
  dependency of custintel): ``BetaGeoFitter().fit`` and ``GammaGammaFitter().fit`` on
  the same columns.

Wall time measured inside each child around the calls; the parameters are compared to
three decimals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "out" / "clv"
LIFETIMES_ENV = OUT / "lifetimes-env"
LIFETIMES_PINS = ["lifetimes==0.11.3", "pandas==1.5.3", "numpy==1.26.4", "scipy==1.11.4"]
TRUE = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 3.7, "gamma": 15.0}


def draw(n: int, seed: int = 1) -> pd.DataFrame:
    """Customers from the BG/NBD process observed for up to three years in whole days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    drop = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.integers(7, 3 * 365, n) / 7.0
    x, t_x, t = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, bool)
    while alive.any():
        nxt = t + rng.exponential(1.0, n) / np.maximum(lam, 1e-12)
        ok = alive & (nxt < T)
        t = np.where(ok, nxt, t)
        x += ok
        t_x = np.where(ok, t, t_x)
        alive &= ok & (rng.random(n) >= drop)
    recency = np.minimum(np.ceil(t_x * 7), T * 7) / 7  # whole days
    nu = rng.gamma(TRUE["q"], 1 / TRUE["gamma"], n)
    spend = rng.gamma(TRUE["p"] * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1)
    monetary = np.where(x > 0, np.round(spend, 2), 0.0)
    return pd.DataFrame({"frequency": x, "recency": recency, "T": T, "monetary": monetary})


def run_custintel(path: Path) -> None:
    from custintel.clv.models import BetaGeo, GammaGamma

    d = pd.read_parquet(path)
    began = time.perf_counter()
    bg = BetaGeo().fit(d.frequency, d.recency, d["T"])
    bg_s = time.perf_counter() - began
    began = time.perf_counter()
    gg = GammaGamma().fit(d.frequency, d.monetary)
    gg_s = time.perf_counter() - began
    began = time.perf_counter()
    bg.probability_alive(d.frequency, d.recency, d["T"])
    bg.conditional_expected_purchases(52, d.frequency, d.recency, d["T"])
    gg.expected_spend(d.frequency, d.monetary)
    predict_s = time.perf_counter() - began
    print(
        json.dumps(
            {
                "bgnbd_s": round(bg_s, 3),
                "gamma_gamma_s": round(gg_s, 3),
                "predict_s": round(predict_s, 3),
                "bgnbd": bg.params_,
                "gamma_gamma": gg.params_,
            }
        )
    )


LIFETIMES_CHILD = """
import json, sys, time
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
d = pd.read_csv(sys.argv[1])
began = time.perf_counter()
bg = BetaGeoFitter().fit(d.frequency, d.recency, d["T"])
bg_s = time.perf_counter() - began
rep = d[d.frequency > 0]
began = time.perf_counter()
gg = GammaGammaFitter().fit(rep.frequency, rep.monetary)
gg_s = time.perf_counter() - began
print(json.dumps({"bgnbd_s": round(bg_s, 3), "gamma_gamma_s": round(gg_s, 3),
                  "bgnbd": {k: float(v) for k, v in bg.params_.items()},
                  "gamma_gamma": {k: float(v) for k, v in gg.params_.items()}}))
"""


def lifetimes_python() -> Path:
    python = LIFETIMES_ENV / "bin" / "python"
    if not python.exists():
        print("creating the lifetimes environment (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LIFETIMES_ENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *LIFETIMES_PINS],
            check=True,
        )
    return python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["custintel"])
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.child == "custintel":
        run_custintel(Path(args.data))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"customers_{args.customers}.parquet"
    if not path.exists():
        draw(args.customers).to_parquet(path)
    d = pd.read_parquet(path)
    print(
        f"{len(d):,} customers, {int((d.frequency > 0).sum()):,} repeat buyers, "
        f"{len(d.drop_duplicates(['frequency', 'recency', 'T'])):,} distinct histories",
        flush=True,
    )
    ours = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--child", "custintel", "--data", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    print(f"custintel: {ours}", flush=True)
    csv = OUT / f"customers_{args.customers}.csv"
    if not csv.exists():
        d.to_csv(csv, index=False)
    theirs = json.loads(
        subprocess.run(
            [str(lifetimes_python()), "-c", LIFETIMES_CHILD, str(csv)],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"lifetimes: {theirs}", flush=True)
    theirs["gamma_gamma"]["gamma"] = theirs["gamma_gamma"].pop("v")  # lifetimes' name
    same = {
        model: {k: (round(ours[model][k], 3), round(theirs[model][k], 3)) for k in ours[model]}
        for model in ("bgnbd", "gamma_gamma")
    }
    result = {
        "customers": len(d),
        "custintel": ours,
        "lifetimes": theirs,
        "bgnbd_speedup": round(theirs["bgnbd_s"] / ours["bgnbd_s"], 1),
        "gamma_gamma_speedup": round(theirs["gamma_gamma_s"] / ours["gamma_gamma_s"], 1),
        "estimates_custintel_vs_lifetimes": same,
        "true": TRUE,
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }
    (OUT / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
