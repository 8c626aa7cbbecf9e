"""What every part of the configuration shares: the strict base model and names."""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
)

from custintel.core.stages import STAGE_NAMES

CONFIG_FILE = "custintel.yaml"


M = TypeVar("M", bound=BaseModel)


STAGES = STAGE_NAMES
"""Every stage custintel knows, in the order ``custintel run`` executes them."""


LABEL_PATTERN = re.compile(
    r"^(churn|purchase|spend|new_category|high_value)_[1-9][0-9]*d$|^response_.+$"
)
"""The label names ``features.labels.parse_label`` understands (it holds their meaning)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
