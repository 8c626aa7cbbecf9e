"""The real-time API: a customer's scores, segment and CLV over HTTP, from the serving
snapshot in memory (docs/serving.md).

Every endpoint asks for an API key (``Authorization: Bearer <key>`` or ``X-API-Key``) and
one scope of :mod:`custintel.core.roles`. Answers are built from plain values and written
with orjson; the Pydantic models below document them in the OpenAPI schema.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from custintel.core import apikeys, consent, eventlog
from custintel.core.config import ServingConfig, load_config
from custintel.core.roles import Scope, allowed
from custintel.pipeline.campaign_tasks import NBA, plan_for
from custintel.pipeline.serving_tasks import event_stream
from custintel.service.guard import FALLBACKS, Guard, RateLimits, metrics_text, retry_after
from custintel.service.live_scoring import RowError
from custintel.service.store import Live, Store

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
CustomerId = Annotated[
    str,
    PathParam(
        pattern=ID_PATTERN,
        description="a persistent customer id",
        examples=["CU00000123"],
    ),
]


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.code, self.message, self.headers = status, code, message, headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# ---- documented shapes ---------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class ModelScore(BaseModel):
    score: float | None = Field(description="probability from the model's champion")
    decile: int | None = Field(description="1 = highest tenth of the scored population")
    tier: str | None = Field(description="high, medium or low")
    reasons: list[str] = Field(description="the features that pushed the score most, in words")
    model_version: int
    as_of: str
    fallback: str | None = Field(
        default=None,
        description="why the score is not the customer's own (segment_average, overall_average)",
    )


class Served(BaseModel):
    snapshot: int = Field(description="the serving snapshot's version")
    stale: bool = Field(description="the snapshot is older than serving.stale_after_hours")


class ScoresOut(Served):
    customer_id: str
    known: bool = Field(description="the customer is in the snapshot")
    scores: dict[str, ModelScore]


class SegmentOut(Served):
    customer_id: str
    known: bool
    segment_id: str | None
    segment_name: str | None
    model_version: int | None
    as_of: str | None


class ClvOut(Served):
    customer_id: str
    known: bool
    p_alive: float | None
    expected_purchases: float | None
    expected_spend: float | None
    clv: float | None
    model_version: int | None
    as_of: str | None
    fallback: str | None = None


class SegmentFigures(BaseModel):
    segment_id: str
    segment_name: str | None
    customers: int
    averages: dict[str, float | None]


class SegmentsOut(Served):
    segments: list[SegmentFigures]


class ScoreIn(BaseModel):
    features: dict[str, float | int | str | bool | None] = Field(
        description="feature name -> value; features not given are scored as missing",
        examples=[{"recency_days": 12, "frequency_365d": 4, "monetary_365d": 310.5}],
        max_length=2000,
    )


class ScoreOut(Served):
    model: str
    model_version: int
    score: float | None
    decile: int | None
    tier: str | None
    engine: str | None = Field(description="onnx or native; none on a fallback")
    missing: list[str] = Field(description="the model's features the request did not give")
    ignored: list[str] = Field(
        default_factory=list,
        description="published features given that this model does not use (left aside)",
    )
    reasons: list[str] | None = Field(
        default=None,
        description="with ?reasons=true: the features that pushed the score most, in words "
        "(exact per-row SHAP, as the batch gives)",
    )
    fallback: str | None = Field(
        default=None,
        description="model_unavailable: the overall average, not a score of these features",
    )


class Action(BaseModel):
    offer: str
    channel: str
    propensity: float | None
    value: float | None
    priority: float | None = Field(description="propensity x value x uplift x weights")
    cost: float | None
    send_hour: float | None = Field(description="the customer's usual e-mail hour (UTC)")
    send_weekday: str | None


class NextBestOut(Served):
    customer_id: str
    known: bool
    actions: list[Action] = Field(description="what to do now; empty when nothing may be")
    rule: str | None = Field(
        description="when no action: the rule that stopped the best candidate furthest on "
        "(consent, frequency_cap, cooling_off, ...); unknown_customer for an id the "
        "snapshot does not hold"
    )
    rules: list[str] = Field(description="every rule some candidate failed")
    as_of: str | None = Field(description="the date the stored decision rows are as of")


Text = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/\-]+$")]


class EventIn(BaseModel):
    customer_id: Annotated[str, Field(pattern=ID_PATTERN, examples=["CU00000123"])]
    kind: Literal["contact", "response"]
    ts: dt.datetime | None = Field(
        default=None, description="when it happened (UTC; default: when received)"
    )
    campaign_id: Text | None = None
    offer: Text | None = None
    channel: Literal[consent.CHANNELS] | None = None  # type: ignore[valid-type]
    outcome: Text | None = Field(default=None, examples=["clicked", "converted", "declined"])
    value: float | None = Field(default=None, allow_inf_nan=False, description="revenue")


class ConsentIn(BaseModel):
    purpose: Literal[(*consent.PURPOSES, consent.ALL)] = "marketing"  # type: ignore[valid-type]
    channel: Literal[(*consent.CHANNELS, consent.ALL)] = consent.ALL  # type: ignore[valid-type]
    status: Literal["withdrawn", "granted"] = "withdrawn"
    ts: dt.datetime | None = Field(default=None, description="when (UTC; default: now)")


class RecordedOut(BaseModel):
    event_id: str
    received_at: str


class Live_(BaseModel):
    status: str


class ReadyOut(BaseModel):
    ready: bool
    snapshot: int | None
    published_at: str | None
    customers: int | None
    models: dict[str, int]
    stale: bool | None
    error: str | None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no key, or a key not known"},
    403: {"model": ErrorOut, "description": "the key's role does not allow this"},
    429: {"model": ErrorOut, "description": "over the key's rate limit (see Retry-After)"},
    503: {"model": ErrorOut, "description": "no snapshot yet, or overloaded (see Retry-After)"},
}
CUSTOMER_ERRORS = {**ERRORS, 422: {"model": ErrorOut, "description": "a malformed customer id"}}


# ---- the application -------------------------------------------------------------------


class Keys:
    """The key file, read again when it changes (checked at most twice a second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: float | None = None
        self._checked = 0.0
        self.ring = apikeys.KeyRing([])
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._seen:
            self.ring = apikeys.KeyRing(apikeys.read(self.path))
            self._seen = mtime

    def verify(self, key: str) -> apikeys.KeyRecord | None:
        now = time.monotonic()
        if now - self._checked > 0.5:
            self._checked = now
            self._reload()
        return self.ring.verify(key)


def create_app(project_dir: Path | str, *, watch: bool = True) -> FastAPI:
    project_dir = Path(project_dir).resolve()
    project = load_config(project_dir)
    cfg: ServingConfig = project.serving
    plan = plan_for(project, NBA) if project.offers else None
    stream = event_stream(project)
    live = Live(project_dir, plan=plan, regime=project.consent.marketing, stream=stream)
    log = eventlog.Appender(eventlog.events_dir(project_dir))
    keys = Keys(apikeys.keys_path(project_dir))
    limits = RateLimits(cfg.rate_per_s, cfg.burst)
    stale_s = cfg.stale_after_hours * 3600

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        if watch:
            live.start()
        yield
        live.stop()
        log.close()

    app = FastAPI(
        title="custintel",
        version="1",
        description="Scores, segments and CLV of one customer at a time, from the serving "
        "snapshot `custintel publish` writes. Every endpoint needs an API key "
        "(`custintel apikey create`) as `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.live = live

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return json_response(
            {"error": {"code": exc.code, "message": exc.message}}, exc.status, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        # the first problem, named by where it is; the value itself is not echoed, since
        # it may be personal data
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return json_response(
            {
                "error": {
                    "code": "invalid_request",
                    "message": f"{where}: {first.get('msg', 'invalid')}",
                }
            },
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return json_response(
            {"error": {"code": "http_" + str(exc.status_code), "message": str(exc.detail)}},
            exc.status_code,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return json_response(
            {"error": {"code": "internal", "message": f"unexpected {type(exc).__name__}"}}, 500
        )

    def needs(scope: Scope) -> Callable[[Request], apikeys.KeyRecord]:
        async def check(request: Request) -> apikeys.KeyRecord:
            header = request.headers.get("authorization", "")
            key = header[7:].strip() if header[:7].lower() == "bearer " else ""
            key = key or request.headers.get("x-api-key", "")
            if not key:
                raise ApiError(
                    401, "unauthenticated", "an API key is required (Authorization: Bearer <key>)",
                    {"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
            record = keys.verify(key)
            if record is None:
                raise ApiError(
                    401, "unauthenticated", "the API key is not valid or was revoked",
                    {"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
            if not allowed(record.role, scope):
                raise ApiError(
                    403,
                    "forbidden",
                    f"the role {record.role} may not use this endpoint ({scope.value})",
                )
            wait = limits.take(record.key_id)
            if wait:
                seconds = retry_after(wait)
                raise ApiError(
                    429, "rate_limited", f"over this key's rate limit; retry in {seconds} s",
                    {"Retry-After": str(seconds)},
                )  # fmt: skip
            return record

        return check

    def store() -> Store:
        s = live.store
        if s is None:
            raise ApiError(
                503, "no_snapshot",
                live.error or "nothing published yet: run `custintel publish`",
                {"Retry-After": "5"},
            )  # fmt: skip
        return s

    def lookup(customer_id: str) -> tuple[Store, int | None]:
        """The live snapshot and the customer's row in it (None: not in it)."""
        s = store()
        return s, s.row(customer_id)

    def stale(s: Store) -> bool:
        return time.time() - s.manifest.get("published_epoch", s.loaded_at) > stale_s

    def served(s: Store) -> dict[str, Any]:
        return {"snapshot": s.version, "stale": stale(s)}

    def average(s: Store, i: int | None, column: str) -> tuple[float | None, str]:
        """The customer's segment's average, else everyone's."""
        fb = s.manifest["fallbacks"]
        seg = s.get("segment_id", i) if i is not None else None
        by = fb["by_segment"].get(str(seg)) if seg is not None else None
        if by is not None and by.get(column) is not None:
            FALLBACKS.labels("segment_average").inc()
            return by[column], "segment_average"
        FALLBACKS.labels("overall_average").inc()
        return fb["overall"].get(column), "overall_average"

    @app.get(
        "/v1/health/live",
        response_model=Live_,
        responses=ERRORS,
        summary="The process answers",
        dependencies=[Depends(needs(Scope.HEALTH))],
    )
    async def health_live() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/v1/health/ready",
        response_model=ReadyOut,
        responses=ERRORS,
        summary="A snapshot and its models are loaded",
        dependencies=[Depends(needs(Scope.OPS))],
    )
    async def health_ready() -> Response:
        s = live.store
        body = {
            "ready": s is not None,
            "snapshot": s.version if s else None,
            "published_at": s.manifest["published_at"] if s else None,
            "customers": s.manifest["customers"] if s else None,
            "models": {k: v["version"] for k, v in s.manifest["models"].items()} if s else {},
            "stale": stale(s) if s else None,
            "error": live.error,
        }
        return json_response(body, 200 if s is not None else 503)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "metrics"}},
        dependencies=[Depends(needs(Scope.OPS))],
    )
    async def metrics() -> Response:
        return Response(metrics_text(), media_type="text/plain; version=0.0.4")

    @app.get(
        "/v1/customers/{customer_id}/scores",
        response_model=ScoresOut,
        responses=CUSTOMER_ERRORS,
        summary="A customer's propensity scores with reasons and model versions",
        dependencies=[Depends(needs(Scope.CUSTOMER_READ))],
    )
    async def customer_scores(customer_id: CustomerId) -> Response:
        s, i = lookup(customer_id)
        scores = s.scores(i) if i is not None else {
            name: {"score": None, "decile": None, "tier": None, "reasons": [],
                   "model_version": info["version"], "as_of": info["as_of"]}
            for name, info in s.manifest["models"].items()
        }  # fmt: skip
        for name, sc in scores.items():
            if sc["score"] is None:
                sc["score"], sc["fallback"] = average(s, i, f"{name}__score")
        return json_response(
            {"customer_id": customer_id, "known": i is not None, "scores": scores, **served(s)}
        )

    @app.get(
        "/v1/customers/{customer_id}/segment",
        response_model=SegmentOut,
        responses=CUSTOMER_ERRORS,
        summary="A customer's segment",
        dependencies=[Depends(needs(Scope.CUSTOMER_READ))],
    )
    async def customer_segment(customer_id: CustomerId) -> Response:
        s, i = lookup(customer_id)
        seg = s.manifest.get("segments") or {}
        return json_response(
            {
                "customer_id": customer_id,
                "known": i is not None,
                "segment_id": s.get("segment_id", i) if i is not None else None,
                "segment_name": s.get("segment_name", i) if i is not None else None,
                "model_version": seg.get("model_version"),
                "as_of": seg.get("as_of"),
                **served(s),
            }
        )

    @app.get(
        "/v1/customers/{customer_id}/clv",
        response_model=ClvOut,
        responses=CUSTOMER_ERRORS,
        summary="A customer's lifetime value and what it is made of",
        dependencies=[Depends(needs(Scope.CUSTOMER_READ))],
    )
    async def customer_clv(customer_id: CustomerId) -> Response:
        s, i = lookup(customer_id)
        info = s.manifest.get("clv") or {}
        body: dict[str, Any] = {
            "customer_id": customer_id,
            "known": i is not None,
            **{f: (s.get(f"clv__{f}", i) if i is not None else None) for f in
               ("p_alive", "expected_purchases", "expected_spend", "clv")},
            "model_version": info.get("model_version"),
            "as_of": info.get("as_of"),
            "fallback": None,
            **served(s),
        }  # fmt: skip
        if body["clv"] is None and info:
            body["clv"], body["fallback"] = average(s, i, "clv__clv")
        return json_response(body)

    @app.post(
        "/v1/score/{model}",
        response_model=ScoreOut,
        responses={
            **ERRORS,
            404: {"model": ErrorOut, "description": "no published model of that name"},
            422: {
                "model": ErrorOut,
                "description": "a feature unknown, of the wrong type or outside its range",
            },
        },
        summary="Score features sent in the request (a visitor without a profile yet)",
        dependencies=[Depends(needs(Scope.SCORE))],
    )
    async def score_features(
        body: ScoreIn,
        model: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_\-]{1,64}$", examples=["churn_90d"])],
        reasons: bool = False,
    ) -> Response:
        s = store()
        info = s.manifest["models"].get(model)
        if info is None:
            names = ", ".join(s.manifest["models"]) or "none"
            raise ApiError(
                404, "unknown_model", f"no published model {model!r} (published: {names})"
            )
        live_model = s.models.get(model)
        out: dict[str, Any] | None = None
        if live_model is not None:
            try:
                out = live_model.answer(body.features, with_reasons=reasons)
            except RowError as exc:
                raise ApiError(422, "invalid_features", str(exc)) from None
            except Exception:  # the model failed on this row: answer, flagged, never a 500
                out = None
        if out is None:
            FALLBACKS.labels("model_unavailable").inc()
            out = {
                "score": s.manifest["fallbacks"]["overall"].get(f"{model}__score"),
                "decile": None, "tier": None, "engine": None, "missing": [],
                "model_version": info["version"], "fallback": "model_unavailable",
            }  # fmt: skip
        return json_response({"model": model, **out, **served(s)})

    @app.get(
        "/v1/customers/{customer_id}/next-best-action",
        response_model=NextBestOut,
        responses=CUSTOMER_ERRORS,
        summary="What to offer the customer now, on which channel, under the contact policy",
        dependencies=[Depends(needs(Scope.DECIDE))],
    )
    def next_best_action(customer_id: CustomerId) -> Response:
        # a plain function: FastAPI runs it on a thread, so the decision (a few ms of
        # pandas) does not hold up the requests around it
        s, _ = lookup(customer_id)
        if s.nba is None or s.overlay is None:
            raise ApiError(
                503, "no_decisions",
                "this snapshot has no next-best-action rows: declare offers in "
                "custintel.yaml and publish again", {"Retry-After": "60"},
            )  # fmt: skip
        try:
            got = s.nba.answer(customer_id, s.overlay)
        except RedisError:  # without the latest opt-outs no action may be offered
            raise ApiError(
                503, "events_unavailable", "the event stream cannot be reached to check "
                "for opt-outs", {"Retry-After": "1"},
            ) from None  # fmt: skip
        if got is None:
            FALLBACKS.labels("unknown_customer").inc()
            got = {"actions": [], "rule": "unknown_customer", "rules": []}
        return json_response(
            {
                "customer_id": customer_id,
                "known": got["rule"] != "unknown_customer",
                **got,
                "as_of": s.manifest["nba"]["as_of"],
                **served(s),
            }
        )

    def record(kind: str, customer_id: str, key: apikeys.KeyRecord, **fields: Any) -> Response:
        when = fields.pop("ts", None)
        if when is not None:  # taken as given: a consent dated ahead counts from then
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            try:
                fields["ts"] = when.astimezone(dt.UTC).isoformat()
            except OverflowError:
                raise ApiError(422, "invalid_request", "body.ts: out of range") from None
        event = eventlog.new_event(kind, customer_id, key_id=key.key_id, **fields)
        # written before the answer: never lost
        if stream is not None:
            try:
                stream.append(event)
            except RedisError:
                raise ApiError(
                    503, "events_unavailable", "the event stream cannot be reached; not "
                    "recorded, send again", {"Retry-After": "1"},
                ) from None  # fmt: skip
        else:
            log.append(event, sync=cfg.fsync_events)
        return json_response(
            {"event_id": event["event_id"], "received_at": event["received_at"]}, 202
        )

    @app.post(
        "/v1/events",
        response_model=RecordedOut,
        status_code=202,
        responses={**ERRORS, 422: {"model": ErrorOut, "description": "a malformed event"}},
        summary="Record a contact made or a customer's response (kept in the append log, "
        "then in serving.events)",
    )
    async def events(
        body: EventIn,
        key: apikeys.KeyRecord = Depends(needs(Scope.EVENTS_WRITE)),
    ) -> Response:
        fields = body.model_dump(exclude={"customer_id", "kind"})
        return record(body.kind, body.customer_id, key, **fields)

    @app.post(
        "/v1/customers/{customer_id}/consent",
        response_model=RecordedOut,
        status_code=202,
        responses=CUSTOMER_ERRORS,
        summary="Record an opt-out (or a consent given): the next decision honours it",
    )
    async def customer_consent(
        customer_id: CustomerId,
        body: ConsentIn,
        key: apikeys.KeyRecord = Depends(needs(Scope.CONSENT_WRITE)),
    ) -> Response:
        return record("consent", customer_id, key, **body.model_dump())

    @app.get(
        "/v1/segments",
        response_model=SegmentsOut,
        responses=ERRORS,
        summary="Customers and average scores by segment (no customer in it)",
        dependencies=[Depends(needs(Scope.AGGREGATES))],
    )
    async def segments() -> Response:
        s = store()
        fb = s.manifest["fallbacks"]
        out = [
            {
                "segment_id": seg,
                "segment_name": fb.get("names", {}).get(seg),
                "customers": int(fb.get("counts", {}).get(seg, 0)),
                "averages": figures,
            }
            for seg, figures in sorted(
                {k: fb["by_segment"].get(k, {}) for k in fb.get("counts", {})}.items()
            )
        ]
        return json_response({"segments": out, **served(s)})

    app.add_middleware(
        Guard,
        max_inflight=cfg.max_inflight,
        max_body_bytes=cfg.max_body_bytes,
        max_lag_s=cfg.max_queue_ms / 1000,
    )
    return app


def factory() -> FastAPI:
    """For ``uvicorn --factory``: the project from ``CUSTINTEL_PROJECT``."""
    return create_app(os.environ.get("CUSTINTEL_PROJECT", "."))
