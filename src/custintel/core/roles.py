"""Who may do what: one role model for the API, the dashboard and governance.

A role grants scopes; an endpoint (or a dashboard page, or a governance action) asks for
one scope. Keeping the table here, in the core, is what lets every interface agree on it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MARKETER = "marketer"
    ANALYST = "analyst"
    ENGINEER = "engineer"
    PRIVACY_OFFICER = "privacy_officer"
    ADMIN = "admin"


class Scope(StrEnum):
    HEALTH = "health"  # liveness
    OPS = "ops"  # readiness details, metrics
    CUSTOMER_READ = "customer:read"  # a customer's scores, segment, CLV
    SCORE = "score"  # score features sent in the request
    DECIDE = "decide"  # next-best action
    EVENTS_WRITE = "events:write"  # record a response or contact event
    AGGREGATES = "aggregates"  # figures by segment, no customer in them
    CONSENT_WRITE = "consent:write"  # record an opt-out


GRANTS: dict[Role, frozenset[Scope]] = {
    Role.MARKETER: frozenset(
        {Scope.HEALTH, Scope.CUSTOMER_READ, Scope.SCORE, Scope.DECIDE, Scope.EVENTS_WRITE,
         Scope.AGGREGATES}
    ),
    Role.ANALYST: frozenset({Scope.HEALTH, Scope.CUSTOMER_READ, Scope.SCORE, Scope.AGGREGATES}),
    Role.ENGINEER: frozenset(
        {Scope.HEALTH, Scope.OPS, Scope.CUSTOMER_READ, Scope.SCORE, Scope.DECIDE,
         Scope.EVENTS_WRITE}
    ),
    # a privacy officer handles consent and requests about people, not their scores
    Role.PRIVACY_OFFICER: frozenset({Scope.HEALTH, Scope.CONSENT_WRITE, Scope.AGGREGATES}),
    Role.ADMIN: frozenset(Scope),
}  # fmt: skip


def allowed(role: Role | str, scope: Scope) -> bool:
    return scope in GRANTS[Role(role)]


def parse_role(text: str) -> Role:
    """A role from its name, with the names listed when it is not one."""
    try:
        return Role(text.strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {text!r}: one of {names}") from None
