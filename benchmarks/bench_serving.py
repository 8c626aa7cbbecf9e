"""The real-time service at 1,000,000 customers: publish time, then lookups under load
with wrk, side by side with the straightforward endpoint that asks DuckDB per request.

    python benchmarks/bench_serving.py [--customers 1000000] [--features 40] [--seconds 20]
        [--overload-seconds 30] [--nba-project DIR]

After the lookups, an overload: 200 connections without pause (ten times the 20 of the
throughput runs) for 30 s, a quarter of the requests recording events, while one probe
connection asks on its own; then every event answered 202 is looked for in the
warehouse. ``--nba-project`` (a published project with offers, e.g. ``make demo``'s)
adds the next-best-action endpoint on its customers.

Needs ``wrk`` (Debian: apt-get install wrk). The warehouse is synthetic (random features
and scores in the tables custintel's stages write), since what is measured is the
publishing and the serving, not the models.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from custintel.core import apikeys, registry
from custintel.core.config import ProjectConfig, ServingConfig
from custintel.features.build import params_for, version_of
from custintel.pipeline.project import Project, init_project

LUA = """
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  return wrk.format(nil, string.format("{path}", math.random(1, {n})))
end
"""

POST_LUA = """
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = {body}
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
"""

IDS_LUA = """
math.randomseed(os.time())
local ids = {{{ids}}}
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  return wrk.format(nil, string.format("{path}", ids[math.random(1, #ids)]))
end
"""

OVERLOAD_LUA = """
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) accepted = 0; shed = 0; other = 0; k = 0 end
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
request = function()
  k = k + 1
  local id = string.format("CU%08d", math.random(1, {n}))
  if k % 4 == 0 then
    local body = '{{"customer_id":"' .. id .. '","kind":"response","outcome":"opened"}}'
    return wrk.format("POST", "/v1/events", nil, body)
  end
  return wrk.format(nil, "/v1/customers/" .. id .. "/scores")
end
response = function(status, headers, body)
  if status == 202 then accepted = accepted + 1
  elseif status == 503 then shed = shed + 1
  elseif status ~= 200 then other = other + 1 end
end
function done(summary, latency, requests)
  local a, s, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); s = s + t:get("shed"); o = o + t:get("other")
  end
  io.write(string.format("COUNTS %d %d %d\\n", a, s, o))
end
"""

# The peer: FastAPI asking the warehouse for the row on every request, one read-only DuckDB
# connection per worker (a cursor per request, as DuckDB asks of threads).
PEER = """
import os, duckdb, orjson
from fastapi import FastAPI
from fastapi.responses import Response
con = duckdb.connect(os.environ["BENCH_DB"], read_only=True)
app = FastAPI()
@app.get("/v1/customers/{customer_id}/scores")
def scores(customer_id: str):
    row = con.cursor().execute(
        "SELECT score, decile, tier, reasons, model_version FROM scores.churn "
        "WHERE customer_id = ?", [customer_id]).fetchone()
    keys = ("score", "decile", "tier", "reasons", "model_version")
    return Response(orjson.dumps(dict(zip(keys, row)) if row else {}), media_type="application/json")
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(project: Path, n: int, n_features: int) -> None:
    """A project whose warehouse holds what the stages would have written."""
    init_project(
        project,
        ProjectConfig(name="bench", sources={}, serving=ServingConfig(rate_per_s=0)),
    )
    with Project.open(project) as p:
        wh = p.warehouse
        _, version = version_of(params_for(wh, p.config))
        con = wh.duckdb
        feats = ", ".join(f"random() * {j + 1} AS f{j:02d}" for j in range(n_features))
        for schema in ("features", "scores", "segments"):
            wh.ensure_schema(schema)
        ids = f"SELECT printf('CU%08d', i) AS customer_id FROM range(1, {n + 1}) t(i)"
        con.execute(
            f"CREATE OR REPLACE TABLE features.customer AS SELECT customer_id, "
            f"DATE '2025-06-30' AS as_of, '{version}' AS feature_set_version, {feats} FROM ({ids})"
        )
        con.execute(
            "CREATE OR REPLACE TABLE scores.churn AS SELECT customer_id, DATE '2025-06-30' AS as_of, "
            "s AS score, CAST(10 - floor(s * 10) AS BIGINT) AS decile, "
            "CASE WHEN s > 0.8 THEN 'high' WHEN s > 0.5 THEN 'medium' ELSE 'low' END AS tier, "
            "'[\"Days since the last purchase: ' || CAST(floor(s * 300) AS INT) || '\"]' AS reasons, "
            f"1 AS model_version FROM (SELECT customer_id, random() AS s FROM ({ids}))"
        )
        con.execute(
            "CREATE OR REPLACE TABLE segments.assignments AS SELECT customer_id, "
            "DATE '2025-06-30' AS as_of, 'S' || CAST(hash(customer_id) % 6 AS VARCHAR) AS segment_id, "
            "'Segment ' || CAST(hash(customer_id) % 6 AS VARCHAR) AS segment_name, "
            f"1 AS model_version FROM ({ids})"
        )
        con.execute(
            "CREATE OR REPLACE TABLE scores.clv AS SELECT customer_id, DATE '2025-06-30' AS as_of, "
            "random() AS p_alive, random() * 3 AS expected_purchases, 20 + random() * 80 AS expected_spend, "
            "random() * 400 AS clv, 365 AS horizon_days, 1 AS model_version "
            f"FROM ({ids})"
        )
        registry.register(
            wh, p.artifacts_dir, name="churn", kind="propensity", algorithm="synthetic",
            model={}, params={}, feature_set="customer", feature_set_version=version,
            snapshots=[], data_hash="", metrics={},
        )  # fmt: skip


def wrk(
    url: str,
    key: str,
    path: str,
    n: int,
    conns: int,
    seconds: int,
    ids: list[str] | None = None,
    body: str | None = None,
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if body is not None:
            f.write(POST_LUA.format(key=key, path=path, body=json.dumps(body)))
        elif ids is None:
            f.write(LUA.format(key=key, path=path.replace("{id}", "CU%08d"), n=n))
        else:
            listed = ",".join(f'"{i}"' for i in ids)
            f.write(IDS_LUA.format(key=key, ids=listed, path=path.replace("{id}", "%s")))
    out = subprocess.run(
        ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def overload(url: str, key: str, n: int, seconds: int, project: Path) -> dict[str, Any]:
    """200 connections for ``seconds`` beside a one-connection probe; the probe's answers
    show what a caller gets meanwhile and how soon after the service is itself again."""
    probe: list[tuple[float, int, float]] = []  # (since start, status, ms)
    stop = threading.Event()
    start = time.perf_counter()

    def ask() -> None:
        rng = np.random.default_rng(1)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            while not stop.is_set():
                cid = f"CU{int(rng.integers(1, n + 1)):08d}"
                began = time.perf_counter()
                r = c.get(f"/v1/customers/{cid}/scores")
                now = time.perf_counter()
                probe.append((began - start, r.status_code, (now - began) * 1000))
                time.sleep(0.01)

    prober = threading.Thread(target=ask)
    prober.start()
    time.sleep(3)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(OVERLOAD_LUA.format(key=key, n=n))
    out = subprocess.run(
        ["wrk", "-t2", "-c200", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    ended = time.perf_counter() - start
    time.sleep(10)
    stop.set()
    prober.join()
    accepted, shed, other = (int(v) for v in re.search(r"COUNTS (\d+) (\d+) (\d+)", out).groups())  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    with Project.open(project) as p:
        p.events_flush()
        stored = p.warehouse.sql("SELECT count(DISTINCT event_id) FROM serving.events").fetchone()[
            0
        ]
    during = [(st, ms) for t, st, ms in probe if 3 <= t < ended]
    ok = [ms for st, ms in during if st == 200]
    after = [(t - ended, st, ms) for t, st, ms in probe if t >= ended]
    # recovered: the start of the first second in which every probe answer is a 200
    # within 5 ms
    recovered = next(
        (
            t0
            for t0, _, _ in after
            if all(st == 200 and ms <= 5 for t, st, ms in after if t0 <= t < t0 + 1)
        ),
        float("nan"),
    )
    return {
        "requests_per_s": rps,
        "events_accepted": accepted,
        "events_in_warehouse": int(stored),
        "shed_503": shed,
        "other_errors": other,
        "probe_during": len(during),
        "probe_shed_share": 1 - len(ok) / max(len(during), 1),
        "probe_ok_p50_ms": float(np.percentile(ok, 50)) if ok else float("nan"),
        "probe_ok_p99_ms": float(np.percentile(ok, 99)) if ok else float("nan"),
        "recovered_after_s": max(recovered, 0.0),
        "probe_after_p99_ms": float(np.percentile([ms for t, st, ms in after if t > 2], 99)),
        "server_alive": httpx.get(
            f"{url}/v1/health/live", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 200,
    }


def nba(project: Path, workers: int, seconds: int) -> dict[str, dict[str, float]]:
    """The next-best-action endpoint on a published project's own customers."""
    from custintel.pipeline.serving_tasks import current_snapshot
    from custintel.service.store import Store

    project = project.resolve()
    store = Store.load(current_snapshot(project))  # type: ignore[arg-type]
    ids = sorted(store.rows)
    # the project's ids are not CU%08d of 1..n in general: a Lua table of them
    key, _ = apikeys.create(apikeys.keys_path(project), "bench-nba", "admin")
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(
        [sys.executable, "-m", "custintel.cli", "serve", "--project", str(project),
         "--port", str(port), "--workers", str(workers)],
        f"{url}/v1/health/ready", key, dict(os.environ),
    )  # fmt: skip
    first = next(iter(store.models), None)
    out = {}
    try:
        if first is not None:  # live scoring of one real profile sent in the request
            names = [*store.manifest["features"], *store.manifest["categorical"]]
            body = json.dumps({"features": {n: store.get(n, 0) for n in names}})
            for conns in (1, 20):
                out[f"live score {first}, {conns} conn."] = wrk(
                    url, key, f"/v1/score/{first}", 1, conns, seconds, body=body
                )
        for conns in (1, 20):
            out[f"next-best action, {conns} conn."] = wrk(
                url, key, "/v1/customers/{id}/next-best-action", len(ids), conns, seconds,
                ids=ids,
            )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
        apikeys.revoke(apikeys.keys_path(project), "bench-nba")
    return out


def serve(cmd: list[str], url: str, key: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if (
                httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=1).status_code
                == 200
            ):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"no answer from {url}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overload-seconds", type=int, default=30)
    ap.add_argument("--nba-project", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    project = root / "shop"
    start = time.perf_counter()
    build(project, args.customers, args.features)
    print(f"synthetic warehouse: {args.customers:,} customers x {args.features} features "
          f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
    with Project.open(project) as p:
        out = p.publish()
    print(f"publish: {out['seconds']} s ({out['customers']:,} customers)")
    key, _ = apikeys.create(apikeys.keys_path(project), "bench", "admin")
    results = {}
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(
        [sys.executable, "-m", "custintel.cli", "serve", "--project", str(project),
         "--port", str(port), "--workers", str(args.workers)],
        f"{url}/v1/health/ready", key, dict(os.environ),
    )  # fmt: skip
    try:
        n = args.customers
        results["custintel scores"] = wrk(
            url, key, "/v1/customers/{id}/scores", n, 20, args.seconds
        )
        results["custintel segment"] = wrk(
            url, key, "/v1/customers/{id}/segment", n, 20, args.seconds
        )
        results["custintel scores, 1 connection"] = wrk(
            url, key, "/v1/customers/{id}/scores", n, 1, args.seconds
        )
        # a publish while under load: wrk counts any failed answer
        during: dict[str, dict[str, float]] = {}
        load = threading.Thread(
            target=lambda: during.update(r=wrk(url, key, "/v1/customers/{id}/scores", n, 20, 15))
        )
        load.start()
        time.sleep(3)
        with Project.open(project) as p:
            swap = p.publish()
        load.join()
        results["custintel scores during a publish"] = during["r"]
        print(f"publish under load: {swap['seconds']} s")
        over = overload(url, key, n, args.overload_seconds, project)
        print(f"\noverload, 200 connections for {args.overload_seconds} s:")
        for k, v in over.items():
            print(f"  {k:22} {v:.3f}" if isinstance(v, float) else f"  {k:22} {v}")
    finally:
        proc.terminate()
        proc.wait(30)
    if args.nba_project is not None:
        results.update(nba(args.nba_project, args.workers, args.seconds))
    peer_port = _port()
    peer_dir = root / "peer"
    peer_dir.mkdir()
    (peer_dir / "peer_app.py").write_text(PEER)
    peer = serve(
        [sys.executable, "-m", "uvicorn", "peer_app:app", "--port", str(peer_port),
         "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"],
        f"http://127.0.0.1:{peer_port}/v1/customers/CU00000001/scores", key,
        {**os.environ, "BENCH_DB": str(project / "custintel.duckdb"), "PYTHONPATH": str(peer_dir)},
    )  # fmt: skip
    try:
        results["DuckDB per request"] = wrk(
            f"http://127.0.0.1:{peer_port}", key, "/v1/customers/{id}/scores", args.customers, 20,
            args.seconds,
        )  # fmt: skip
    finally:
        peer.terminate()
        peer.wait(30)
    print(f"\n{'':36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(
            f"{name:36} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['non_2xx']:8d} {r['socket_errors']}"
        )
    base = results["DuckDB per request"]["rps"]
    print(
        f"\ncustintel / DuckDB per request: {results['custintel scores']['rps'] / base:.1f}x the requests/s"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
