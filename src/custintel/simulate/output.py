"""Writing simulated frames as a system would export them: CSV through DuckDB (fast and
byte-identical for a seed), formatting of dates and amounts, per-system ids."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa


def write_csv(frame: pd.DataFrame, path: Path, *, delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(f"COPY frame TO '{path}' (HEADER, DELIMITER '{delimiter}')")
    con.close()


class Formatter:
    """Formats numeric frames into source files with DuckDB (fast, byte-stable).

    Weeks since the start become timestamps in SQL rather than in pandas, which keeps
    tens of millions of rows cheap to write. DuckDB writes one CSV on one core, so each
    file is written in a background thread while numpy draws the next one; at most
    ``ahead`` files wait, which bounds memory. Every file is complete and the same for the
    same input whatever the timing, so output stays byte-identical.
    """

    def __init__(self, start: date, ahead: int = 2) -> None:
        self.db = duckdb.connect()
        self.start = start
        self.ahead = ahead
        self.pool = ThreadPoolExecutor(max_workers=ahead)
        self.pending: list[Future[None]] = []

    def __enter__(self) -> Formatter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            self.pool.shutdown(wait=True)

    def flush(self) -> None:
        """Wait until every file handed over is written (DuckDB's memory is freed)."""
        while self.pending:
            self.pending.pop(0).result()

    def ts(self, col: str, fmt: str = "%Y-%m-%dT%H:%M:%SZ", zone: str | None = None) -> str:
        value = (
            f"TIMESTAMP '{self.start}' + "
            f"to_microseconds(CAST(round({col} * 604800000000) AS BIGINT))"
        )
        if zone:
            value = f"timezone('{zone}', CAST({value} AS TIMESTAMPTZ))"
        return f"CASE WHEN isnan({col}) THEN '' ELSE strftime({value}, '{fmt}') END"

    def write(
        self,
        frame: pd.DataFrame | pa.Table | dict[str, Any],
        select: str,
        path: Path,
        *,
        delimiter: str = ",",
        raw: bool = False,
        parquet: bool = False,
    ) -> None:
        """``COPY (SELECT <select> FROM frame)``; ``raw`` writes values unquoted (the
        values are known to hold no delimiter, except a deliberately malformed line)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(frame, dict):  # numpy columns go to Arrow without a pandas copy
            frame = pa.table(
                {k: pa.array(v) if isinstance(v, pd.Categorical) else v for k, v in frame.items()}
            )
        elif isinstance(frame, pd.DataFrame):  # convert here, where the GIL is held anyway
            frame = pa.Table.from_pandas(frame, preserve_index=False)
        quote = ", QUOTE '', ESCAPE ''" if raw else ""
        options = "FORMAT parquet" if parquet else f"HEADER, DELIMITER '{delimiter}'{quote}"
        sql = f"COPY (SELECT {select} FROM frame) TO '{path}' ({options})"
        while len(self.pending) >= self.ahead:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._copy, frame, sql))

    def _copy(self, table: pa.Table, sql: str) -> None:
        con = self.db.cursor()  # a connection of its own per thread
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("frame", table)
            con.execute(sql)
        finally:
            con.close()


def lookup(values: np.ndarray, names: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(values.astype(np.int64), categories=list(names))


def choice(which: np.ndarray, values: tuple[str, ...]) -> pd.Categorical:
    """``values[which]`` as a categorical; ``values`` may repeat."""
    uniq, inverse = np.unique(np.array(values, dtype=str), return_inverse=True)
    return pd.Categorical.from_codes(inverse[which], categories=uniq)


class Ids:
    """Per-person strings (ids, addresses; None or empty when missing), stored once as an
    Arrow array and gathered by integer codes: per-row Python strings are never built,
    which keeps tens of millions of rows cheap to hand to DuckDB."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=object)
        present = ~pd.isna(values)
        present[present] = values[present] != ""
        self.uniq, inverse = np.unique(values[present].astype(str), return_inverse=True)
        self.code = np.full(values.size, -1, dtype=np.int64)
        self.code[present] = inverse
        self.missing = ~present

        self.arrow = pa.array(self.uniq, type=pa.string())

    def take(self, index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        """``values[index]`` as an Arrow string array (a C++ gather, no Python strings),
        NULL where ``mask`` is False or the value is missing."""
        picked = self.code[index]
        if mask is not None:
            picked = np.where(mask, picked, -1)
        return self.from_codes(picked)

    def from_codes(self, codes: np.ndarray) -> pa.Array:
        """The strings of codes from ``self.code`` (-1: NULL)."""
        return self.arrow.take(pa.array(codes, mask=codes < 0))


def per_person(record_truth: pd.DataFrame, system: str, n: int) -> np.ndarray:
    """The id of each person's first record in ``system`` (None when they have none)."""
    first = record_truth[record_truth.system == system].drop_duplicates("person_id")
    ids = np.full(n, None, dtype=object)
    ids[first.person_id.to_numpy()] = first.source_id.to_numpy()
    return ids
