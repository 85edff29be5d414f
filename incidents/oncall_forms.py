"""Forms of the on-call actions: what a responder posts from the list and the incident page.

The forms validate input only; the store decides whether the action is allowed now.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents.choices import Resolution
from incidents.models import Silence
from incidents.oncall import NOTE_MAX
from incidents.roles import responders

MAX_SELECTED = 100  # rows of one list page are 50; more in one post is a mistake or an attack


class NextField(forms.CharField):
    """Where to go back to: a path on this site (checked again by the view)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, max_length=2000, widget=forms.HiddenInput, **kwargs)


class BulkActionForm(forms.Form):
    """The list's actions on the selected rows: acknowledge, assign to me, close."""

    ACTIONS = (
        ("acknowledge", "Acknowledge"),
        ("assign_me", "Assign to me"),
        ("close", "Close"),
    )

    action = forms.ChoiceField(choices=ACTIONS)
    incident = forms.TypedMultipleChoiceField(coerce=str, required=True)
    # Only "close" reads it; the list's select always sends one.
    resolution = forms.ChoiceField(
        choices=Resolution.choices, initial=Resolution.FIXED, required=False
    )
    next = NextField()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Any UUID is a valid choice: the store answers for unknown ones.
        # self.fields holds copies of the fields declared above, typed as plain Fields.
        incident = cast(forms.TypedMultipleChoiceField, self.fields["incident"])
        incident.valid_value = _is_uuid  # type: ignore[method-assign]
        self.fields["incident"].error_messages["required"] = "Select at least one incident."

    def clean_resolution(self) -> str:
        return self.cleaned_data["resolution"] or Resolution.FIXED

    def clean_incident(self) -> list[str]:
        selected = self.cleaned_data["incident"]
        if len(selected) > MAX_SELECTED:
            raise forms.ValidationError(f"Select at most {MAX_SELECTED} incidents.")
        return list(dict.fromkeys(selected))


def _is_uuid(value: object) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class NoteForm(forms.Form):
    text = forms.CharField(
        max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 3}), label="Note"
    )
    next = NextField()


class CloseForm(forms.Form):
    resolution = forms.ChoiceField(choices=Resolution.choices, initial=Resolution.FIXED)
    note = forms.CharField(
        max_length=NOTE_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    next = NextField()


class ReopenForm(forms.Form):
    note = forms.CharField(max_length=NOTE_MAX, required=False)
    next = NextField()


class PlainForm(forms.Form):
    """Acknowledge: nothing to fill in."""

    next = NextField()


class AssignForm(forms.Form):
    """Assign to a responder; empty unassigns."""

    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), required=False, empty_label="(nobody)"
    )
    next = NextField()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        assignee = cast(forms.ModelChoiceField, self.fields["assignee"])
        assignee.queryset = responders()


DURATIONS = (
    ("1", "1 hour"),
    ("4", "4 hours"),
    ("24", "1 day"),
    ("168", "1 week"),
)


def _matcher(label: str) -> forms.CharField:
    return forms.CharField(max_length=255, required=False, label=label)


class SilenceForm(forms.Form):
    """A new silence: the fields it matches (exact, or a prefix ending in `*`), for how long,
    and why. The store validates again and names any field it refuses."""

    cluster = _matcher("Cluster")
    namespace = _matcher("Namespace")
    resource_kind = _matcher("Kind")
    fault_type = _matcher("Fault type")
    resource_name = _matcher("Resource name")
    hours = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial="1", label="For")
    comment = forms.CharField(
        max_length=2000, widget=forms.TextInput(attrs={"placeholder": "why, and who to ask"})
    )
    next = NextField()

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        if not any(data.get(name) for name in Silence.MATCH_FIELDS):
            raise forms.ValidationError(
                "Give at least one of cluster, namespace, kind, fault type or resource name."
            )
        return data

    def ends_at(self):
        return timezone.now() + timedelta(hours=self.cleaned_data["hours"])
