"""LightGBM settings searched with Optuna: TPE sampling, median pruning, a seed, and a
budget of trials and seconds.

Each trial fits on the training snapshots and is judged by the AUC on the early-stopping
rows, the same rows that stop it; the calibration rows stay unseen, so choosing between
the tuned LightGBM and the other learners afterwards is still fair. Every tenth boosting
round reports its AUC, and a trial running behind the median of earlier trials at the
same round is stopped early (pruned).

On large tables the trials learn from a stratified sample (``tuning.sample_rows``) and
the final model from every training row.

With a trial budget the search is repeatable (same seed, same trials); a time budget that
cuts it short depends on the machine's speed, which the summary records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from lightgbm import early_stopping

from custintel.models.algorithms import lightgbm

REPORT_EVERY = 10


@dataclass
class Tuned:
    params: dict[str, Any]
    best_auc: float
    trials: list[dict[str, Any]]
    seconds: float
    stopped_by: str  # "trials" or "time"


def space(trial: optuna.Trial) -> dict[str, Any]:
    """Ranges wide enough for customer tables from thousands to millions of rows."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 1000, log=True),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }


def _pruning(trial: optuna.Trial) -> Any:
    def callback(env: Any) -> None:
        step = env.iteration + 1
        if step % REPORT_EVERY:
            return
        auc = next(r[2] for r in env.evaluation_result_list if r[1] == "auc")
        trial.report(auc, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"AUC {auc:.4f} at round {step}")

    return callback


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    stop_X: pd.DataFrame,
    stop_y: np.ndarray,
    *,
    base: dict[str, Any],
    trials: int,
    timeout: float | None,
    seed: int,
    pruning: bool = True,
    patience: int = 100,
) -> Tuned:
    """Search LightGBM settings around ``base`` (settings given in config stay fixed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5 * REPORT_EVERY)
        if pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    rounds: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {**space(trial), **base}
        model = lightgbm(params, seed)
        model.fit(
            X,
            y,
            eval_X=(stop_X,),
            eval_y=(stop_y,),
            eval_metric="auc",
            callbacks=[early_stopping(patience, verbose=False), _pruning(trial)],
        )
        rounds[trial.number] = int(model.best_iteration_ or model.n_estimators)
        return float(model.best_score_["valid_0"]["auc"])

    began = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=timeout, gc_after_trial=True)
    seconds = time.perf_counter() - began
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return Tuned(dict(base), float("nan"), [], seconds, "time")
    best = study.best_trial
    history = [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            "auc": None if t.value is None else round(float(t.value), 6),
            "rounds": rounds.get(t.number),
            "seconds": round(t.duration.total_seconds(), 2) if t.duration else None,
            **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in t.params.items()},
        }
        for t in study.trials
    ]
    return Tuned(
        {**best.params, **base},
        float(best.value),
        history,
        seconds,
        "trials" if len(study.trials) >= trials else "time",
    )
