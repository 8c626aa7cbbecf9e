"""Loading sources into the warehouse: read, parse, check, classify, write, reconcile.

Each input (a file, or a SQL source's result) is one load. A load is all-or-nothing: on
DuckDB its writes share one transaction, so a run killed half-way leaves nothing behind
and the next run simply does the load again. On Spark, rows carry their ``_load_id`` and
a load counts only once ``ops.ingested_files`` records it; rows of unrecorded loads are
removed before the next run.

Every record read ends in exactly one place, the clean table, quarantine or the duplicate
count, and ``rows_in = clean + quarantined + duplicates`` is checked before committing.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import ibis.expr.types as ir

from custintel import __version__
from custintel.core.config import CsvOptions, ProjectConfig, SourceConfig
from custintel.core.contracts import Contract, get_contract
from custintel.core.errors import SourceError
from custintel.core.lineage import append_ops, ensure_ops_tables, now, record_lineage
from custintel.core.sqltext import ident as _q
from custintel.core.sqltext import literal as _lit
from custintel.core.warehouse import Warehouse
from custintel.ingest import readers
from custintel.ingest.census import TextCensus, compression_of, text_census
from custintel.ingest.files import InputFile, discover
from custintel.ingest.load_sql import LoadSql
from custintel.ingest.parse import (
    Mapping,
    numbered,
    parsed_select,
    resolve_mapping,
    with_malformed,
)
from custintel.ingest.results import (
    FIELDS_TABLE,
    QUARANTINE_TABLE,
    IngestSummary,
    LoadResult,
    Progress,
    fault_point,
    reconcile,
    session_timezone,
)


class Loader(LoadSql):
    """Runs the ingest stage for a project; holds the scratch DuckDB for non-DuckDB warehouses."""

    def __init__(
        self,
        wh: Warehouse,
        config: ProjectConfig,
        project_dir: Path,
        *,
        run_id: str,
        clock: Callable[[], datetime] = now,
        progress: Progress | None = None,
    ) -> None:
        self.wh = wh
        self.config = config
        self.project_dir = Path(project_dir)
        self.run_id = run_id
        self.clock = clock
        self.progress = progress
        # Readers always run in DuckDB: the warehouse's own connection when it is DuckDB,
        # else a private one whose parsed tables travel to the warehouse as Parquet.
        self.duck = wh.duckdb if wh.kind == "duckdb" else duckdb.connect()
        if wh.kind != "duckdb":
            self.duck.execute("SET TimeZone = 'UTC'")
        self.started = clock()
        self._plans: dict[tuple[Any, ...], dict[str, Any]] = {}

    # -- the registry of loaded inputs -------------------------------------------------
    def _registry(self) -> dict[tuple[str, str], str]:
        frame = self.wh.table("ops", "ingested_files").select("source", "file", "sha256").execute()
        return {(r.source, r.file): r.sha256 for r in frame.itertuples()}

    def _dependencies(self) -> dict[tuple[str, str], set[tuple[str, str]]]:
        """For each registered input, the inputs whose rows some of its rows deferred to
        (duplicates and key conflicts across files)."""
        t = self.wh.table("ops", "ingested_files")
        frame = t.filter(t.depends_on.notnull()).select("source", "file", "depends_on").execute()
        out: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for r in frame.itertuples():
            pairs = {tuple(d.split(":", 1)) for d in json.loads(r.depends_on or "[]")}
            if pairs:
                out[(r.source, r.file)] = pairs  # type: ignore[assignment]
        return out

    def _remove_unrecorded_loads(self) -> None:
        """Spark only: drop rows of loads a crash left without a registry entry."""
        recorded = "SELECT load_id FROM " + self.wh.qualified("ops", "ingested_files")
        for schema, name in self._data_tables():
            self.wh.delete_where(schema, name, f"_load_id NOT IN ({recorded})")

    def _data_tables(self) -> list[tuple[str, str]]:
        tables = [("clean", c) for c in self.wh.tables("clean")]
        for name in (QUARANTINE_TABLE, FIELDS_TABLE):
            if self.wh.exists("quarantine", name):
                tables.append(("quarantine", name))
        return tables

    # -- running -------------------------------------------------------------------------
    def run(self, only: list[str] | None = None, *, strict: bool | None = None) -> IngestSummary:
        """Load every source (or ``only`` these); ``strict`` (default: ``ingest.strict``)
        fails a source whose path matches no input instead of warning."""
        started = self.clock()
        ensure_ops_tables(self.wh)
        if not self.wh.transactional:
            self._remove_unrecorded_loads()
        names = only or list(self.config.sources)
        unknown = [n for n in names if n not in self.config.sources]
        if unknown:
            raise SourceError(
                f"unknown source(s) {unknown}; configured: {list(self.config.sources)}"
            )
        strict = self.config.ingest.strict if strict is None else strict
        summary = IngestSummary(self.run_id, [])
        for name in names:
            summary.results.extend(self.run_source(name, strict=strict, warnings=summary.warnings))
        reloaded = {(r.source, r.file): r for r in self._reload_dependents(summary.results)}
        # A reload replaces the input's "unchanged" line of this run.
        summary.results = [reloaded.pop((r.source, r.file), r) for r in summary.results]
        summary.results.extend(reloaded.values())
        totals = summary.as_dict()
        append_ops(
            self.wh,
            "ingest_runs",
            [
                {
                    "run_id": self.run_id,
                    "started_at": started,
                    "finished_at": self.clock(),
                    "status": "failed" if summary.failed else "ok",
                    **{k: totals[k] for k in ("files_loaded", "files_skipped", "files_failed")},
                    **{
                        k: totals[k]
                        for k in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")
                    },
                    "reconciled": all(r.reconciled for r in summary.results),
                    "message": "; ".join(r.message for r in summary.failed),
                    "code_version": __version__,
                    "config_hash": self.config.config_hash(),
                    "warnings": json.dumps(summary.warnings),
                }
            ],
        )
        return summary

    def run_source(
        self, name: str, *, strict: bool = False, warnings: list[str] | None = None
    ) -> list[LoadResult]:
        warnings = [] if warnings is None else warnings
        source = self.config.sources[name]
        registry = self._registry()
        if source.sql is not None:
            return [
                self._guarded(name, f"sql:{name}", lambda: self._load_sql(name, source, registry))
            ]
        found = discover(self.project_dir, source.path or "", source.format)
        results = []
        for relative, why in found.ignored:
            results.append(LoadResult(name, relative, "ignored", message=why))
            warnings.append(f"{name}: {relative}: {why}")
        if not found.files:
            hint = ""
            if found.folders:
                hint = (
                    f" (it names the folder {found.folders[0]}: give a file pattern such as "
                    f"{found.folders[0]}/*.csv)"
                )
            text = f"{name}: path {source.path!r} matches no input file{hint}"
            if strict:
                results.append(
                    LoadResult(name, source.path or "", "failed", message=text + " (--strict)")
                )
            else:
                warnings.append(text)
        for i, file in enumerate(found.files):
            if self.progress:
                self.progress(f"{name}: {file.relative}", i, len(found.files))
            results.append(
                self._guarded(
                    name, file.relative, lambda f=file: self._load_file(name, source, f, registry)
                )
            )
        if self.progress:
            self.progress(name, len(found.files), len(found.files))
        present = {f.relative for f in found.files}
        policy = source.deleted_files or self.config.ingest.deleted_files
        for (src, label), _ in sorted(registry.items()):
            if src != name or label in present or label.startswith("sql:"):
                continue
            if policy == "remove":
                results.append(self._guarded(name, label, lambda lb=label: self._remove(name, lb)))
            else:
                text = (
                    f"{name}: {label} is no longer there; its rows are kept "
                    "(deleted_files: remove drops them)"
                )
                results.append(LoadResult(name, label, "missing", message=text))
                warnings.append(text)
        return results

    def _remove(self, name: str, label: str) -> LoadResult:
        """Take out every row a vanished input loaded, and forget the input."""
        t = self.wh.table("ops", "ingested_files")
        row = t.filter((t.source == name) & (t.file == label)).execute().iloc[0]
        own = f"_source = {_lit(name)} AND _file = {_lit(label)}"
        with self.wh.transaction():
            for schema, table in self._data_tables():
                self.wh.delete_where(schema, table, own)
            self.wh.delete_where(
                "ops", "ingested_files", f"source = {_lit(name)} AND file = {_lit(label)}"
            )
        return LoadResult(
            name,
            label,
            "removed",
            message=f"no longer there: its {int(row.rows_clean)} clean and "
            f"{int(row.rows_quarantined)} quarantined rows were removed",
        )

    def _reload_dependents(self, results: list[LoadResult]) -> list[LoadResult]:
        """Load again the inputs whose rows deferred to an input that changed or vanished
        in this run: a duplicate of a row that is gone must come back as clean."""
        changed = {(r.source, r.file) for r in results if r.status in ("loaded", "removed")}
        done = {(r.source, r.file) for r in results if r.status != "skipped"}
        out: list[LoadResult] = []
        while changed:
            dependents = sorted(
                key
                for key, deps in self._dependencies().items()
                if key not in done and key[0] in self.config.sources and deps & changed
            )
            changed = set()
            for name, label in dependents:
                done.add((name, label))
                result = self._guarded(name, label, lambda n=name, lb=label: self._reload(n, lb))
                out.append(result)
                if result.status == "loaded":
                    changed.add((name, label))
        return out

    def _reload(self, name: str, label: str) -> LoadResult:
        source = self.config.sources[name]
        if source.sql is not None:
            result = self._load_sql(name, source, {})
        else:
            files = [
                f
                for f in discover(self.project_dir, source.path or "", source.format).files
                if f.relative == label
            ]
            if not files:
                return LoadResult(name, label, "skipped", message="not there to reload")
            result = self._load_file(name, source, files[0], {})
        if result.status == "loaded":
            result.message = "reloaded: an input its duplicates deferred to changed"
        return result

    def _guarded(self, name: str, label: str, load: Callable[[], LoadResult]) -> LoadResult:
        start = time.perf_counter()
        try:
            result = load()
        except SourceError as exc:
            result = LoadResult(name, label, "failed", message=str(exc))
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc):
                raise KeyboardInterrupt from exc  # Ctrl-C stops the run, not one input
            # An input DuckDB chokes on in a way no rule foresaw fails alone, with its name;
            # the other inputs of the run still load.
            message = f"{name}: {label}: {type(exc).__name__}: {readers.first_line(exc)}"
            result = LoadResult(name, label, "failed", message=message)
        result.seconds = round(time.perf_counter() - start, 3)
        return result

    def _load_file(
        self, name: str, source: SourceConfig, file: InputFile, registry: dict[tuple[str, str], str]
    ) -> LoadResult:
        if registry.get((name, file.relative)) == file.sha256:
            return LoadResult(name, file.relative, "skipped", message="unchanged since last load")
        twins = [f for (s, f), sha in registry.items() if s == name and sha == file.sha256]
        if twins:
            return LoadResult(name, file.relative, "skipped", message=f"same content as {twins[0]}")
        scratch = f"ci_read_{uuid.uuid4().hex[:10]}"
        scan = None
        try:
            if file.format == "parquet":
                scan = readers.read_parquet(self.duck, file, scratch)
            elif file.format == "jsonl":
                encoding = source.csv.encoding
                scan = readers.read_jsonl(
                    self.duck, file, scratch, encoding, self._census(file, None, encoding)
                )
            else:
                opts = readers.csv_options_for(source.csv, file.path)
                if opts.delimiter == "whitespace":
                    census = self._census(file, None, opts.encoding)
                    scan = readers.read_whitespace(self.duck, file, opts, scratch, census)
                    return self._load(
                        name, source, scan, file, file.relative, file.sha256, file.size_bytes
                    )
                census = self._census(file, opts, opts.encoding)
                names = readers.csv_names(self.duck, file, opts)
                if census.regular and opts.encoding != "utf-16":
                    # DuckDB's parallel reader, checked against the census; a file it
                    # cannot account for is read again record by record.
                    header_lines = opts.skip_rows + int(opts.header)
                    scan = readers.read_csv(
                        self.duck, file, opts, scratch, names, census.records(header_lines)
                    )
                    try:
                        return self._load(
                            name, source, scan, file, file.relative, file.sha256, file.size_bytes
                        )
                    except readers.Miscount:
                        self._drop_scratch(scan.scratch)
                scan = readers.salvage_csv(self.duck, file, opts, scratch, names, census)
            return self._load(name, source, scan, file, file.relative, file.sha256, file.size_bytes)
        finally:
            self._drop_scratch(scan.scratch if scan else ())

    @staticmethod
    def _census(file: InputFile, opts: CsvOptions | None, encoding: str) -> TextCensus:
        compression = compression_of(file.path, opts.compression if opts else "auto")
        quote, escape = (opts.quote, opts.escape) if opts else ("", "")
        return text_census(
            file.path, compression, file.relative, quote=quote, escape=escape, encoding=encoding
        )

    def _load_sql(
        self, name: str, source: SourceConfig, registry: dict[tuple[str, str], str]
    ) -> LoadResult:
        label = f"sql:{name}"
        scan = None
        try:
            scan = readers.read_sql(
                self.duck, source, self.project_dir, f"ci_read_{uuid.uuid4().hex[:10]}"
            )
            fingerprint = readers.sql_fingerprint(self.duck, scan)
            if registry.get((name, label)) == fingerprint:
                return LoadResult(name, label, "skipped", message="query result unchanged")
            return self._load(name, source, scan, None, label, fingerprint, 0)
        finally:
            self._drop_scratch(scan.scratch if scan else ())

    def _drop_scratch(self, names: tuple[str, ...]) -> None:
        for name in names:
            for kind in ("VIEW", "TABLE"):  # DuckDB refuses DROP VIEW on a table and back
                with contextlib.suppress(duckdb.CatalogException):
                    self.duck.execute(f"DROP {kind} IF EXISTS {_q(name)}")

    # -- one load ------------------------------------------------------------------------
    def _parse(
        self,
        name: str,
        source: SourceConfig,
        contract: Contract,
        mapping: Mapping,
        scan: readers.Scan,
        file: InputFile | None,
        label: str,
        load_id: str,
        table: str,
    ) -> ir.Table:
        """Read and parse the input in one pass into a DuckDB temp table, then hand it to
        the warehouse (directly on DuckDB, as Parquet on Spark)."""
        constants = {
            "source": source.system or name,
            "_source": name,
            "_file": label,
            "_load_id": load_id,
        }
        sql = parsed_select(
            contract,
            source,
            mapping,
            scan,
            system=constants["source"],
            source_name=name,
            file_label=label,
            load_id=load_id,
        )
        with session_timezone(self.duck, source.timezone):
            try:
                target = table if scan.numbered else table + "_rows"
                self.duck.execute(f"CREATE OR REPLACE TEMP TABLE {_q(target)} AS {sql}")
                if not scan.numbered:
                    self.duck.execute(
                        f"CREATE OR REPLACE TEMP VIEW {_q(table)} AS {numbered(target, scan.header_lines)}"
                    )
            except duckdb.Error as exc:
                if file is not None and file.format == "csv":
                    raise readers.csv_error(file, exc) from exc
                raise SourceError(
                    f"{name}: {label}: cannot be read: {readers.first_line(exc)}"
                ) from exc
        if scan.expected is not None:
            readers.check_count(self.duck, scan, target, label)
        malformed = readers.malformed_rows(self.duck, scan)
        if malformed is not None:
            rebuilt = with_malformed(table, malformed, scan.header_lines, constants)
            self.duck.execute(f"CREATE OR REPLACE TEMP TABLE {_q(table + '_fixed')} AS {rebuilt}")
            self._drop_scratch((table, table + "_rows"))
            self.duck.execute(f"ALTER TABLE {_q(table + '_fixed')} RENAME TO {_q(table)}")
        if mapping.line_key:
            # Each line its own record: the key is the file and line it came from.
            keyed = _q(table + "_keyed")
            self.duck.execute(
                f"CREATE OR REPLACE TEMP TABLE {keyed} AS SELECT * REPLACE "
                f"(_file || ':' || _line::VARCHAR AS {_q(mapping.line_key)}) FROM {_q(table)}"
            )
            self._drop_scratch((table, table + "_rows"))
            self.duck.execute(f"ALTER TABLE {keyed} RENAME TO {_q(table)}")
        if self.wh.kind == "duckdb":
            return self.wh.con.table(table, database=("temp", "main"))
        if self.wh.staging is None:
            # No folder the executors share: the parsed rows go through the driver.
            rows = self.duck.execute(f"SELECT * FROM {_q(table)}").fetch_arrow_table()
            self._drop_scratch((table, table + "_rows"))
            self.wh.session.createDataFrame(rows).createOrReplaceTempView(table)
            return self.wh.con.table(table)
        folder = Path(self.wh.staging.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{table}.parquet"
        self.duck.execute(f"COPY {_q(table)} TO {_lit(str(path))} (FORMAT parquet)")
        self._drop_scratch((table, table + "_rows"))
        return self.wh.con.read_parquet(str(path), table_name=table)

    def _drop_stage(self, name: str) -> None:
        if self.wh.kind == "duckdb":
            self._drop_scratch((name, name + "_rows"))
        else:
            self.wh.drop("staging", name)
            self.wh.sql(f"DROP VIEW IF EXISTS `{name}`")
            if self.wh.staging is not None:
                folder = Path(self.wh.staging.removeprefix("file://"))
                (folder / f"{name}.parquet").unlink(missing_ok=True)

    def _load(
        self,
        name: str,
        source: SourceConfig,
        scan: readers.Scan,
        file: InputFile | None,
        label: str,
        sha: str,
        size: int,
    ) -> LoadResult:
        started = self.clock()
        contract = get_contract(source.contract)
        mapping = resolve_mapping(contract, source, scan.columns, f"{name}: {label}")
        load_id = uuid.uuid4().hex
        if self.wh.kind == "duckdb":
            # Fixed names, so every load of a source compiles to the same SQL (cached):
            # temp tables are private to the connection and loads run one at a time.
            parsed_name, exceptions_name, existing_name = "ci_parsed", "ci_except", "ci_existing"
        else:
            tag = load_id[:10]
            parsed_name, exceptions_name = f"ci_parsed_{tag}", f"ci_except_{tag}"
            existing_name = f"ci_existing_{tag}"
        try:
            parsed = self._parse(
                name, source, contract, mapping, scan, file, label, load_id, parsed_name
            )
            has_existing = self.wh.exists("clean", contract.name)
            if has_existing:
                self._existing_view(existing_name, contract, name, label)
            key = (name, parsed_name, has_existing, tuple(sorted(mapping.sources.items())))
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = self._plan_exceptions(
                    name, contract, parsed, existing_name if has_existing else None
                )
            found = self._stage_sql(exceptions_name, plan["exceptions"])
            if "tally" not in plan:
                plan.update(
                    self._plan_outcomes(
                        plan["checked"],
                        plan["clearing"],
                        plan["flagging"],
                        found,
                        contract,
                        mapping,
                    )
                )
            result = self._count(name, label, parsed_name, plan)
            depends_on = sorted(str(p) for (p,) in self._fetch(plan["prior"]))
            result.extra_columns = mapping.extra
            with self.wh.transaction():
                own = f"_source = {_lit(name)} AND _file = {_lit(label)}"
                for schema, table in self._data_tables():
                    self.wh.delete_where(schema, table, own)
                self.wh.append("clean", contract.name, plan["clean"])
                fault_point("ingest.after_clean_write")
                self.wh.append("quarantine", QUARANTINE_TABLE, plan["quarantine"])
                if plan["fields"]:
                    self.wh.append("quarantine", FIELDS_TABLE, plan["fields"])
                reconcile(self.wh, result, contract, load_id)
                self.wh.delete_where(
                    "ops", "ingested_files", f"source = {_lit(name)} AND file = {_lit(label)}"
                )
                append_ops(
                    self.wh,
                    "ingested_files",
                    [
                        {
                            "source": name,
                            "file": label,
                            "sha256": sha,
                            "size_bytes": size,
                            "load_id": load_id,
                            "run_id": self.run_id,
                            "loaded_at": self.clock(),
                            "rows_in": result.rows_in,
                            "rows_clean": result.rows_clean,
                            "rows_quarantined": result.rows_quarantined,
                            "rows_duplicate": result.rows_duplicate,
                            "rule_counts": json.dumps(result.rule_counts, sort_keys=True),
                            "field_counts": json.dumps(result.field_counts, sort_keys=True),
                            "extra_columns": json.dumps(mapping.extra),
                            "depends_on": json.dumps(depends_on),
                        }
                    ],
                )
                record_lineage(
                    self.wh,
                    run_id=self.run_id,
                    stage="ingest",
                    source=name,
                    input=label,
                    input_hash=sha,
                    output=f"clean.{contract.name}",
                    config_hash=self.config.config_hash(),
                    started_at=started,
                    rows_in=result.rows_in,
                    rows_out=result.rows_clean,
                    rows_quarantined=result.rows_quarantined,
                    rows_duplicate=result.rows_duplicate,
                    rule_counts=result.rule_counts,
                )
        finally:
            self._drop_stage(parsed_name)
            self._drop_stage(exceptions_name)
            if self.wh.kind == "duckdb":
                self._drop_scratch((existing_name,))
            else:
                self.wh.sql(f"DROP VIEW IF EXISTS `{existing_name}`")
        return result
