"""The settings of campaigns: channels, the contact policy, offers and campaigns
(docs/campaigns.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from custintel.core.config.base import LABEL_PATTERN, Strict

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Address = Literal["email", "phone", "postal", "email_or_phone"]

DEFAULT_ADDRESS: dict[str, Address] = {
    "email": "email",
    "sms": "phone",
    "phone": "phone",
    "post": "postal",
    "ads": "email_or_phone",
    "push": "email_or_phone",
    "web": "email_or_phone",
}


class Caps(Strict):
    """Most contacts in a calendar day, the last 7 days and the last 30 days."""

    day: int | None = Field(default=None, ge=0)
    week: int | None = Field(default=None, ge=0)
    month: int | None = Field(default=None, ge=0)

    def limits(self) -> dict[str, int]:
        return {k: v for k, v in (("day", self.day), ("week", self.week), ("month", self.month))
                if v is not None}  # fmt: skip


ExportFormat = Literal[
    "email_platform", "sms_platform", "mail_house",
    "google_customer_match", "meta_custom_audience", "none",
]  # fmt: skip
"""The file a channel's contacts are exported as (docs/campaigns.md#delivery)."""

DEFAULT_EXPORT: dict[str, ExportFormat] = {
    "email": "email_platform",
    "sms": "sms_platform",
    "phone": "sms_platform",
    "post": "mail_house",
    "ads": "google_customer_match",
}


class WebhookConfig(Strict):
    """Where a channel's contacts are posted, in batches, each with an idempotency key.

    A batch that fails (no answer, 408, 429 or 5xx) is tried again after ``backoff_s``,
    doubling each time up to ``max_backoff_s`` (a ``Retry-After`` header wins); other
    4xx answers are not retried. The token, if any, is read from an environment variable
    so that it never sits in the config."""

    url: str = Field(pattern=r"^https?://\S+$")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    tries: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    timeout_s: float = Field(default=10.0, gt=0)
    token_env: str | None = Field(
        default=None, description="environment variable holding a bearer token"
    )


class ChannelConfig(Strict):
    """A contact channel: what a contact costs, what address it needs, its budget, and
    how its contacts leave (a file in a platform's import format, a webhook, or both)."""

    cost: float = Field(default=0.0, ge=0, description="cost of one contact")
    address: Address | None = Field(
        default=None,
        description="the address a contact needs: email (valid, not bounced), phone, postal "
        "(address and postcode) or email_or_phone (default: by the channel's name)",
    )
    budget: float | None = Field(default=None, ge=0, description="spend limit per run")
    export: ExportFormat | None = Field(
        default=None, description="import format of the exported file (default: by the name)"
    )
    webhook: WebhookConfig | None = None

    def needs(self, name: str) -> Address:
        return self.address or DEFAULT_ADDRESS.get(name, "email_or_phone")

    def export_format(self, name: str) -> ExportFormat:
        return self.export or DEFAULT_EXPORT.get(name, "none")


def _default_channels() -> dict[str, ChannelConfig]:
    return {
        "email": ChannelConfig(cost=0.01),
        "sms": ChannelConfig(cost=0.05),
        "post": ChannelConfig(cost=0.8),
        "ads": ChannelConfig(cost=0.02),
    }


class Fatigue(Strict):
    """Fewer contacts for customers whose e-mail engagement is falling: their weekly and
    monthly caps are multiplied by ``cap_factor`` (rounded down)."""

    enabled: bool = True
    min_sends: int = Field(default=3, ge=1, description="sends in 90 days before judging")
    ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="falling: the open rate of the last 30 days below this share of the "
        "open rate of the 60 days before",
    )
    cap_factor: float = Field(default=0.5, ge=0, le=1)


class Override(Strict):
    """Contact a customer although a rule suppresses them, for a named reason (a service
    message, a complaint follow-up). Consent is never overridden."""

    customer_id: str
    rule: Literal["do_not_contact", "cooling_off", "recent_purchase", "open_ticket"]
    reason: str = Field(min_length=3, description="why, in words (kept in the decision log)")
    channel: str | None = None
    until: dt.date | None = None


class GlobalControl(Strict):
    """A long-lived group held out of every campaign, to measure marketing as a whole."""

    share: float = Field(default=0.0, ge=0, le=0.5)
    name: Name = "global"


class ContactPolicyConfig(Strict):
    """Who may be contacted at all, and how often (docs/campaigns.md#contact-policy)."""

    caps: dict[str, Caps] = Field(
        default_factory=lambda: {"all": Caps(day=1, week=2, month=6)},
        description="frequency caps per channel, and `all` across channels",
    )
    cooling_off_days: int = Field(
        default=2, ge=0, description="no contact this many days after any contact"
    )
    recent_purchase_days: int = Field(
        default=14,
        ge=0,
        description="suppress customers who bought the offer's category (any, without one) "
        "this many days before",
    )
    open_tickets: bool = Field(default=True, description="suppress open or pending tickets")
    running_controls: bool = Field(
        default=True, description="suppress members of a control group still running"
    )
    control_days: int = Field(
        default=30, ge=1, description="a control group runs this many days after its date"
    )
    history_days: int = Field(
        default=30, ge=1, le=366, description="contacts read back for caps (the longest cap)"
    )
    do_not_contact: list[str] = Field(
        default_factory=list,
        description="CSV files (relative to the project) of customer_id, channel (or all), "
        "until (empty: for good), reason",
    )
    overrides: list[Override] = Field(default_factory=list)
    fatigue: Fatigue = Field(default_factory=Fatigue)
    global_control: GlobalControl = Field(default_factory=GlobalControl)


class AudienceConfig(Strict):
    """Who a campaign considers; every condition given must hold (docs/campaigns.md#audiences)."""

    segments: list[str] = Field(default_factory=list, description="segment names")
    score: str | None = Field(default=None, description="label whose deciles or tiers select")
    deciles: list[int] = Field(default_factory=list, description="of `score`, 1 = highest")
    tiers: list[Literal["high", "medium", "low"]] = Field(default_factory=list)
    clv_deciles: list[int] = Field(default_factory=list, description="of CLV, 1 = highest")
    where: str | None = Field(
        default=None,
        description="a SQL condition over the customer's features and scores "
        "(e.g. `days_since_last_purchase > 60`)",
    )
    include: list[str] = Field(default_factory=list, description="customer ids always in")
    exclude: list[str] = Field(default_factory=list, description="customer ids always out")

    @field_validator("deciles", "clv_deciles")
    @classmethod
    def _deciles(cls, value: list[int]) -> list[int]:
        if any(not 1 <= d <= 10 for d in value):
            raise ValueError("deciles are 1 (highest) to 10")
        return sorted(set(value))

    @model_validator(mode="after")
    def _score_named(self) -> AudienceConfig:
        if (self.deciles or self.tiers) and not self.score:
            raise ValueError("deciles and tiers select on a score: name it with `score`")
        return self


class OfferConfig(Strict):
    """An offer: whose response it expects, what that is worth, what it costs, its limits."""

    score: str = Field(description="label whose score is the propensity to respond")
    value: float | Literal["clv"] = Field(
        default="clv", description="value of a response: a number, or the customer's CLV"
    )
    uplift: float = Field(
        default=1.0,
        gt=0,
        description="share of the value a contact adds (the incremental part of a response)",
    )
    channels: list[str] = Field(default_factory=lambda: ["email"], min_length=1)
    cost: float = Field(default=0.0, ge=0, description="offer cost per contact")
    cost_per_response: float = Field(default=0.0, ge=0, description="e.g. the discount given")
    budget: float | None = Field(default=None, ge=0)
    inventory: int | None = Field(default=None, ge=0, description="most contacts (units)")
    lever: float = Field(default=1.0, ge=0, description="business weight of the offer")
    context: dict[str, float] = Field(
        default_factory=dict,
        description="weight by channel or segment name (default 1): the moment's fit",
    )
    category: str | None = Field(default=None, description="for recent-purchase suppression")
    eligible: str | None = Field(default=None, description="a SQL condition: the offer's rules")

    @field_validator("score")
    @classmethod
    def _label(cls, value: str) -> str:
        if not LABEL_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a label (churn_90d, purchase_90d, ...)")
        return value


class CampaignConfig(Strict):
    """A campaign: its offers and channels, audience, holdout and limits."""

    offers: list[str] = Field(min_length=1)
    channels: list[str] | None = Field(
        default=None, description="channels used (default: every channel of its offers)"
    )
    audience: AudienceConfig = Field(default_factory=AudienceConfig)
    holdout: float = Field(default=0.1, ge=0, le=0.9, description="share held out as control")
    stratify: Literal["tier", "segment"] | None = Field(
        default=None,
        description="hold out exactly `holdout` of each tier or segment (frozen at the first run)",
    )
    control_group: Name | None = Field(
        default=None, description="name of its control group (default: the campaign's)"
    )
    budget: float | None = Field(default=None, ge=0)
    actions_per_customer: int = Field(default=1, ge=1, description="across its channels")
    actions_per_channel: int = Field(default=1, ge=1)
    sleeping_dogs: Literal["keep", "exclude"] = Field(
        default="keep",
        description="exclude: leave out customers whose predicted uplift is negative "
        "(scores.uplift_<campaign>, docs/measurement.md#uplift)",
    )
    allocation: Literal["greedy", "exact"] = Field(
        default="greedy",
        description="greedy by value per cost, or the exact optimum (scipy's milp)",
    )


def check_campaigns(
    channels: dict[str, ChannelConfig],
    policy: ContactPolicyConfig,
    offers: dict[str, OfferConfig],
    campaigns: dict[str, CampaignConfig],
) -> list[str]:
    """What is wrong across the sections: unknown names, control groups claimed twice,
    budgets below one contact's cost."""
    problems = []
    for name in policy.caps:
        if name != "all" and name not in channels:
            problems.append(f"contact_policy.caps.{name}: no channel {name!r}")
    for name, offer in offers.items():
        for ch in offer.channels:
            if ch not in channels:
                problems.append(
                    f"offers.{name}.channels: no channel {ch!r} (channels: {', '.join(channels)})"
                )
        cheapest = min((channels[c].cost for c in offer.channels if c in channels), default=0)
        if offer.budget is not None and offer.budget < cheapest + offer.cost:
            problems.append(
                f"offers.{name}.budget: {offer.budget} is below the cost of one contact "
                f"({cheapest + offer.cost})"
            )
    groups: dict[str, str] = {}
    for name, campaign in campaigns.items():
        for o in campaign.offers:
            if o not in offers:
                known = ", ".join(offers) or "none declared"
                problems.append(f"campaigns.{name}.offers: no offer {o!r} (offers: {known})")
        for ch in campaign.channels or []:
            if ch not in channels:
                problems.append(f"campaigns.{name}.channels: no channel {ch!r}")
        group = campaign.control_group or name
        if group == policy.global_control.name:
            problems.append(
                f"campaigns.{name}.control_group: {group!r} is the global control group"
            )
        elif group in groups:
            problems.append(
                f"campaigns.{name}.control_group: {group!r} is already the control group of "
                f"campaign {groups[group]!r}; each campaign needs its own"
            )
        groups[group] = name
        if campaign.budget is not None:
            known = [o for o in campaign.offers if o in offers]
            costs = [
                channels[c].cost + offers[o].cost
                for o in known
                for c in offers[o].channels
                if c in channels
            ]
            if costs and campaign.budget < min(costs):
                problems.append(
                    f"campaigns.{name}.budget: {campaign.budget} is below the cost of one "
                    f"contact ({min(costs)})"
                )
    return problems
