"""Template helpers of the quality pages: the weekly verdict chart (inline SVG, as the
dashboard's), drawn from numbers only; labels are escaped by the template."""

from __future__ import annotations

from django import template

from incidents.choices import VERDICT_COLOURS, Verdict
from incidents.quality.scoreboard import Scoreboard
from incidents.templatetags.incident_tags import AxisLabel, Segment

register = template.Library()

CHART_WIDTH = 720
CHART_HEIGHT = 196
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 8, 10, 42


@register.inclusion_tag("incidents/partials/_verdict_chart.html")
def verdict_trend(board: Scoreboard) -> dict:
    """Each week's verdicts as a bar of 100 %, split by verdict (correct at the base), and the
    number of verdicts above it: a share that moved is seen with how much it rests on."""
    weeks = board.weeks
    plot_width = CHART_WIDTH - _LEFT - _RIGHT
    plot_height = CHART_HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(weeks), 1)
    bar_width = max(min(slot * 0.6, 60.0), 1.0)
    segments: list[Segment] = []
    labels: list[AxisLabel] = []
    totals: list[AxisLabel] = []
    for index, (week, score) in enumerate(weeks):
        x = _LEFT + index * slot + (slot - bar_width) / 2
        base: float = _TOP + plot_height
        for _value, label, colour, count, percent in score.shares:
            if not count:
                continue
            height = plot_height * percent / 100
            base -= height
            segments.append(
                Segment(
                    x=round(x, 2), y=round(base, 2), width=round(bar_width, 2),
                    height=round(height, 2), colour=colour,
                    title=f"week of {week:%b %-d}: {count} {label.lower()} ({percent:.0f}%)",
                )
            )  # fmt: skip
        centre = round(_LEFT + index * slot + slot / 2, 2)
        labels.append(AxisLabel(x=centre, y=CHART_HEIGHT - 24, text=f"{week:%b %-d}"))
        totals.append(AxisLabel(x=centre, y=CHART_HEIGHT - 8, text=f"n={score.total}"))
    grid = [
        AxisLabel(x=_LEFT - 6, y=round(_TOP + plot_height * (1 - fraction), 2), text=text)
        for fraction, text in ((0, "0%"), (0.5, "50%"), (1, "100%"))
    ]
    judged_weeks = [(week, score) for week, score in weeks if score.total]
    description = (
        "; ".join(
            f"week of {week:%b %-d}: {score.share(Verdict.CORRECT):.0f}% correct of {score.total}"
            for week, score in judged_weeks
        )
        or "No verdicts in this window."
    )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": _LEFT,
        "right": CHART_WIDTH - _RIGHT,
        "segments": segments,
        "labels": labels,
        "totals": totals,
        "grid": grid,
        "description": description,
        "legend": [(label, VERDICT_COLOURS[value]) for value, label in Verdict.choices],
    }


@register.inclusion_tag("incidents/partials/_badge.html")
def verdict_badge(value: str) -> dict:
    """A verdict badge: its colour from VERDICT_COLOURS and its label."""
    label = Verdict(value).label if value in Verdict.values else value
    return {"kind": "verdict", "value": value, "label": label, "colour": VERDICT_COLOURS.get(value)}
