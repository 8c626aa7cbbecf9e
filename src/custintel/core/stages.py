"""Every stage of the lifecycle, declared once.

A stage's line names what the rest of custintel needs to know about it: the warehouse
schemas it writes, the stages whose tables it reads, and where its run function, report
page, command group and documentation live. The config's allowed ``stages``, the
warehouse's schemas, ``custintel status``, ``custintel run``, the report index, the CLI
and the layer test all read this list, so adding a stage is one line here plus the
stage's own modules (docs/architecture.md shows a worked example).

The places are dotted names, not imports: this module sits in the core layer and may not
import the layers above it; they are resolved only when used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of ``custintel run``.

    ``run`` is ``module:function`` taking ``(project, run_id, progress)`` and returning a
    ``StageResult``; ``page`` a report module with ``section(project)``; ``cli`` a command
    module that adds its commands when imported; ``package`` the capability package that
    holds the stage's logic (the layer test treats it as a capability).
    """

    name: str
    schemas: tuple[str, ...]
    needs: tuple[str, ...]
    run: str
    page: str
    cli: str
    docs: str
    package: str = ""

    @property
    def capability(self) -> str:
        return self.package or self.name


STAGES: tuple[Stage, ...] = (
    Stage(name="ingest", schemas=("staging", "raw", "quarantine", "clean"), needs=(),
          run="custintel.pipeline.ingest_tasks:run_stage", page="custintel.report.quality",
          cli="custintel.cli.ingest", docs="ingest.md"),
    Stage(name="identity", schemas=("identity", "customer"), needs=("ingest",),
          run="custintel.pipeline.identity_tasks:run_stage", page="custintel.report.identity",
          cli="custintel.cli.identity", docs="identity.md"),
    Stage(name="features", schemas=("features",), needs=("identity",),
          run="custintel.pipeline.feature_tasks:run_stage", page="custintel.report.features",
          cli="custintel.cli.features", docs="features.md"),
    Stage(name="segments", schemas=("segments",), needs=("features",),
          run="custintel.pipeline.segment_tasks:run_stage", page="custintel.report.segments",
          cli="custintel.cli.segments", docs="segments.md"),
    Stage(name="models", schemas=("models", "scores"), needs=("features",),
          run="custintel.pipeline.model_tasks:run_stage", page="custintel.report.models",
          cli="custintel.cli.models", docs="models.md"),
    Stage(name="clv", schemas=("models", "scores"), needs=("identity",),
          run="custintel.pipeline.clv_tasks:run_stage", page="custintel.report.clv",
          cli="custintel.cli.clv", docs="clv.md"),
    Stage(name="campaigns", schemas=("campaign",), needs=("segments", "models", "clv"),
          run="custintel.pipeline.campaign_tasks:run_stage", page="custintel.report.campaigns",
          cli="custintel.cli.campaigns", docs="campaigns.md"),
    Stage(name="measurement", schemas=("measure",), needs=("campaigns",),
          run="custintel.pipeline.measure_tasks:run_stage", page="custintel.report.measurement",
          cli="custintel.cli.measure", docs="measurement.md", package="measure"),
    Stage(name="serving", schemas=("serving",), needs=("features",),
          run="custintel.pipeline.serving_tasks:run_stage", page="custintel.report.serving",
          cli="custintel.cli.serving", docs="serving.md", package="service"),
)  # fmt: skip
"""In the order ``custintel run`` executes them."""

CORE_SCHEMAS = ("ops",)
"""Schemas no stage owns: runs, lineage, registries and (later) consent and audit."""

STAGE_NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


def schemas() -> tuple[str, ...]:
    """Every schema custintel creates: the core ones, then each stage's in order."""
    out = list(CORE_SCHEMAS)
    for s in STAGES:
        out += [x for x in s.schemas if x not in out]
    return tuple(out)


def order_problems(names: list[str]) -> list[str]:
    """What is wrong with a list of stages to run: unknown names, repeats, and a stage
    placed before one it needs (a needed stage left out is fine: its tables may exist)."""
    problems = []
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        problems.append(
            f"unknown stage{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the stages are {', '.join(STAGE_NAMES)}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"stage {', '.join(map(repr, repeated))} listed more than once")
    position = {n: i for i, n in enumerate(names)}
    for name in names:
        if name not in STAGE_NAMES:
            continue
        for need in stage(name).needs:
            if need in position and position[need] > position[name]:
                problems.append(
                    f"{name!r} needs {need!r} (it reads its tables), so {need!r} must come "
                    f"first; the order that runs is {', '.join(STAGE_NAMES)}"
                )
    return problems
