"""Forms of the quality pages: a verdict on a report, and the scoreboard's window and filters.
They validate input only; the store decides (and says in its errors) what a verdict needs."""

from __future__ import annotations

from typing import cast

from django import forms

from incidents.choices import Verdict
from incidents.filters import MAX_VALUES, OpenMultipleChoiceField
from incidents.quality.scoreboard import DEFAULT_WINDOW, WINDOWS, ScoreFilters
from incidents.quality.verdicts import CAUSE_MAX, NOTE_MAX
from incidents.selectors import filter_choices


class VerdictForm(forms.Form):
    verdict = forms.ChoiceField(choices=Verdict.choices, widget=forms.RadioSelect, label="Verdict")
    actual_cause = forms.CharField(
        required=False,
        max_length=CAUSE_MAX,
        label="Actual root cause",
        help_text="One sentence; required when the report is partly correct or wrong.",
    )
    note = forms.CharField(
        required=False, max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 2}), label="Note"
    )


class ScoreboardForm(forms.Form):
    """GET parameters of /quality/: `days` (7, 30, 90), `cluster` and `fault_type` (repeat)."""

    days = forms.TypedChoiceField(
        choices=[(days, f"{days} days") for days in WINDOWS],
        coerce=int,
        required=False,
        empty_value=None,
        initial=DEFAULT_WINDOW,
        widget=forms.RadioSelect,
        label="Window",
    )
    cluster = OpenMultipleChoiceField(required=False, label="Cluster")
    fault_type = OpenMultipleChoiceField(required=False, label="Fault type")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = filter_choices()
        for name, values in (("cluster", choices.clusters), ("fault_type", choices.fault_types)):
            field = cast(forms.MultipleChoiceField, self.fields[name])
            field.choices = [(value, value) for value in values]

    def filters(self) -> ScoreFilters:
        data = self.cleaned_data
        return ScoreFilters(
            days=data.get("days") or DEFAULT_WINDOW,
            clusters=tuple(data.get("cluster") or ())[:MAX_VALUES],
            fault_types=tuple(data.get("fault_type") or ())[:MAX_VALUES],
        )
