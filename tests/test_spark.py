"""The same small ingest on DuckDB and on Spark (local mode) gives the same clean tables."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from custintel.core.config import ProjectConfig
from custintel.pipeline.project import Project, init_project
from custintel.simulate.sample import sample_config

pytest.importorskip("pyspark", reason="install custintel[spark] to run the Spark tests")
if shutil.which("java") is None:
    pytest.skip(
        "Spark needs Java 17 (apt-get install openjdk-17-jre-headless)", allow_module_level=True
    )

pytestmark = pytest.mark.spark
SOURCES = ("shop_orders", "store_orders", "crm_customers", "web_events")


def _clean_tables(project: Project) -> dict[str, pd.DataFrame]:
    wh = project.warehouse
    out = {}
    for name in ("orders", "customers", "web_events"):
        frame = wh.table("clean", name).drop("_load_id").execute()
        for col in frame.columns:
            # Spark's TIMESTAMP is an instant shown in the session zone (UTC here) and
            # comes back naive; DuckDB's TIMESTAMPTZ comes back aware. Compare instants.
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                frame[col] = frame[col].dt.tz_convert("UTC")
            elif pd.api.types.is_datetime64_dtype(frame[col].dtype):
                frame[col] = frame[col].dt.tz_localize("UTC")
        frame = frame.astype({c: "object" for c in frame.columns})
        out[name] = frame.sort_values(["_file", "_line"]).reset_index(drop=True)
    return out


def _project(tmp_path: Path, data: Path, url: str, **spark: Any) -> Project:
    base = sample_config(data, tmp_path / url.split(":")[0])
    config = ProjectConfig(
        sources={k: v for k, v in base.sources.items() if k in SOURCES},
        warehouse={"url": url, "spark": spark},
    )
    folder = tmp_path / url.split(":")[0]
    init_project(folder, config)
    return Project.open(folder)


def test_duckdb_and_spark_give_the_same_clean_tables(
    tmp_path: Path, sample_data: tuple[Path, dict[str, Any]]
) -> None:
    data, truth = sample_data
    with _project(tmp_path, data, "duckdb://wh.duckdb") as duck:
        duck_summary = duck.ingest().as_dict()
        duck_tables = _clean_tables(duck)
    # settings from the config, and staged rows through the driver, as on a cluster whose
    # executors cannot read the driver's disk (the other Spark tests stage Parquet)
    settings = {
        "shuffle_partitions": 3,
        "conf": {"spark.sql.adaptive.enabled": "false"},
        "staging_uri": "driver",
    }
    with _project(tmp_path, data, "spark://local[2]", **settings) as spark:
        session = spark.warehouse.session
        assert session.conf.get("spark.sql.shuffle.partitions") == "3"
        assert session.conf.get("spark.sql.adaptive.enabled") == "false"
        spark_summary = spark.ingest().as_dict()
        spark_tables = _clean_tables(spark)
        assert list((spark.dir / ".custintel").rglob("*.parquet")) == []
        again = spark.ingest().as_dict()
        quarantined = spark.warehouse.count("quarantine", "rows")
    assert spark_summary["files_failed"] == 0
    for key in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate"):
        assert spark_summary[key] == duck_summary[key], key
    assert (
        quarantined
        == duck_summary["rows_quarantined"]
        == sum(sum(truth[s]["rules"].values()) for s in SOURCES)
    )
    assert again["files_loaded"] == 0 and again["files_skipped"] == spark_summary["files_loaded"]
    for name, frame in duck_tables.items():
        pd.testing.assert_frame_equal(frame, spark_tables[name], check_dtype=False)


def test_identity_on_spark_gives_the_same_customers(tmp_path: Path) -> None:
    """The same simulated profiles resolved on a DuckDB and on a Spark warehouse: a full
    first run, then an incremental run after 5 % more profiles arrive."""
    from custintel.simulate.writer import SimulationConfig, simulate, simulation_sources

    simulate(tmp_path / "data", SimulationConfig(customers=700, seed=31))
    crm = tmp_path / "data" / "crm" / "customers.csv"
    everyone = pd.read_csv(crm, dtype=str)
    everyone.iloc[: int(len(everyone) * 0.95)].to_csv(crm, index=False)
    sources = {k: v for k, v in simulation_sources("../data").items() if v.contract == "customers"}
    urls = ("duckdb://wh.duckdb", "spark://local[2]")
    for url in urls:
        folder = tmp_path / url.split(":")[0]
        init_project(folder, ProjectConfig(sources=sources, warehouse={"url": url}))
    maps, profiles = {}, {}
    for phase in ("full", "incremental"):
        if phase == "incremental":
            everyone.to_csv(crm, index=False)
        for url in urls:
            with Project.open(tmp_path / url.split(":")[0]) as project:
                project.ingest()
                result = project.identity_resolve()
                frame = project.warehouse.table("identity", "customer_map").execute()
                golden = project.warehouse.table("customer", "profile").execute()
            profiles[url] = golden.sort_values("customer_id", ignore_index=True)[
                ["customer_id", "first_name", "last_name", "email", "phone", "birth_date"]
            ]
            assert result.mode == phase, (url, result.mode_reason)
            if phase == "full":
                assert result.records > 1000 and "links above" in result.probabilistic
            else:
                assert result.delta_records == len(everyone) - int(len(everyone) * 0.95)
            maps[url] = frame[["source", "source_id", "customer_id", "linked_by"]].sort_values(
                ["source", "source_id"], ignore_index=True
            )
        duck, spark = maps.values()
        diff = duck.customer_id != spark.customer_id
        assert not diff.any(), (phase, duck[diff].head(), spark[diff].head())
        # Missing values stay missing on Spark too (the golden record holds NULLs).
        pd.testing.assert_frame_equal(
            *(p.astype(object).where(p.notna(), None) for p in profiles.values())
        )


def test_features_on_spark_equal_duckdb(tmp_path: Path) -> None:
    """The same feature definitions over the same clean and identity tables give the same
    values on Spark as on DuckDB (ingest parity is tested above, so the tables are copied)."""
    import datetime as dt

    import numpy as np

    from custintel.core.config import FeaturesConfig, SegmentsConfig
    from custintel.simulate.writer import SimulationConfig, simulate, simulation_sources

    simulate(tmp_path / "data", SimulationConfig(customers=400, seed=8))
    segments = SegmentsConfig(k=3, bootstrap=0)
    features = FeaturesConfig(as_of=dt.date(2025, 6, 30), snapshots=[dt.date(2025, 3, 31)])
    tables = {
        "clean": [
            "orders",
            "email_events",
            "web_events",
            "support_tickets",
            "consents",
            "contacts",
        ],
        "identity": ["customer_map", "devices"],
        "customer": ["profile"],
    }
    frames: dict[str, dict[str, pd.DataFrame]] = {}
    for url in ("duckdb://wh.duckdb", "spark://local[2]"):
        folder = tmp_path / url.split(":")[0]
        config = ProjectConfig(
            sources=simulation_sources("../data"),
            warehouse={"url": url},
            features=features,
            segments=segments,
        )
        init_project(folder, config)
        with Project.open(folder) as project:
            wh = project.warehouse
            if url.startswith("duckdb"):
                project.ingest()
                project.identity_resolve()
                copies = {(s, n): wh.table(s, n).execute() for s, ns in tables.items() for n in ns}
            else:
                for (schema, name), frame in copies.items():
                    wh.put(schema, name, frame)
            built = project.features_build()
            project.features_training_set("churn_90d")
            project.segment_fit()
            moved = project.segment_compare(dt.date(2025, 3, 31), dt.date(2025, 6, 30))
            frames[url] = {
                "customer": wh.table("features", "customer").execute(),
                "train": wh.table("features", "train_churn_90d").execute(),
                "segments": wh.table("segments", "assignments").execute(),
            }
            assert project.segment_rules("sql").count("CASE") > 1
        assert sum(sum(row.values()) for row in moved["matrix"].values()) > 300
        assert built.rows > 300
    for name, keys in (
        ("customer", ["customer_id"]),
        ("train", ["customer_id", "as_of"]),
        ("segments", ["customer_id", "as_of"]),
    ):
        duck, spark = (f[name].sort_values(keys, ignore_index=True) for f in frames.values())
        assert list(duck.columns) == list(spark.columns) and len(duck) == len(spark) > 100
        for col in duck.columns:
            a, b = duck[col], spark[col]
            if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
                same = np.allclose(a.astype(float), b.astype(float), rtol=1e-12, equal_nan=True)
            else:
                same = bool(((a == b) | (a.isna() & b.isna())).all())
            if not same:
                bad = ~((a == b) | (a.isna() & b.isna()))
                raise AssertionError((name, col, a[bad].head(3).tolist(), b[bad].head(3).tolist()))
