"""The list's controls that are not filters: sort order, page position, auto-refresh."""

from django import forms

from incidents.selectors import DEFAULT_SORT, SORTS


class ListControlsForm(forms.Form):
    """`sort`, a keyset position (`after` / `before` / `last`), and `refresh`.

    Cursors are opaque tokens made by `selectors.encode_cursor`; they are decoded (and rejected
    with a clear message) by `selectors.paginate`, which knows the sort they belong to.
    """

    sort = forms.ChoiceField(
        choices=[(key, sort.label) for key, sort in SORTS.items()], required=False
    )
    after = forms.CharField(max_length=512, required=False)
    before = forms.CharField(max_length=512, required=False)
    last = forms.BooleanField(required=False)
    refresh = forms.BooleanField(required=False)

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        positions = [name for name in ("after", "before", "last") if data.get(name)]
        if len(positions) > 1:
            raise forms.ValidationError(f"Give one page position, not {' and '.join(positions)}.")
        data["sort"] = data.get("sort") or DEFAULT_SORT
        return data
