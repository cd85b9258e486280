from django import forms

from accounts import access
from accounts.models import Disease, Role, User
from grading.models import AIModel
from grading.selectors import DiscrepancyFilters


class DiscrepancyFilterForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[("graders", "Between graders"), ("ai", "AI vs consensus")], required=False, initial="graders"
    )
    hospital = forms.ModelChoiceField(queryset=None, required=False, empty_label="All hospitals")
    lab_unit = forms.ModelChoiceField(queryset=None, required=False, empty_label="All lab units")
    disease = forms.ModelChoiceField(queryset=Disease.objects.all(), required=False, empty_label="All diseases")
    grader = forms.ModelChoiceField(queryset=None, required=False, empty_label="All graders")
    ai_model = forms.ModelChoiceField(queryset=AIModel.objects.all(), required=False, empty_label="All AI models")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hospital"].queryset = access.hospitals(user)
        self.fields["lab_unit"].queryset = access.lab_units(user)
        graders = User.objects.filter(role_rows__role__in=[Role.RESIDENT, Role.OPHTHALMOLOGIST]).distinct()
        ids = access.lab_unit_ids(user)
        if ids is not None:
            graders = graders.filter(lab_units__in=ids).distinct()
        self.fields["grader"].queryset = graders.order_by("username")
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-select form-select-sm")
        for name in ("date_from", "date_to"):
            self.fields[name].widget.attrs["class"] = "form-control form-control-sm"

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> DiscrepancyFilters:
        data = self.cleaned_data if self.is_valid() else {}

        def pk(name):
            value = data.get(name)
            return value.pk if value is not None else None

        return DiscrepancyFilters(
            kind=data.get("kind") or "graders",
            hospital=pk("hospital"),
            lab_unit=pk("lab_unit"),
            disease=pk("disease"),
            grader=pk("grader"),
            ai_model=pk("ai_model"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
