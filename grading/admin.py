"""Django admin: admins edit grade schemes and the AI model registry; grades, consensus and tasks are read-only here
(history is never rewritten: grades are superseded through the grading services, never edited)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from grading.models import AIModel, Consensus, Grade, GradeOption, GradeScheme, GradingTask

FIXED_WHEN_USED = ("code", "ordinal", "referable", "ungradable")


def used_option_ids(scheme_id) -> set[int]:
    if not scheme_id:
        return set()
    used = set(Grade.objects.filter(scheme_id=scheme_id, option__isnull=False).values_list("option_id", flat=True))
    used |= set(Consensus.objects.filter(scheme_id=scheme_id).values_list("option_id", flat=True))
    return used


class GradeOptionForm(forms.ModelForm):
    class Meta:
        model = GradeOption
        fields = ["code", "label", "ordinal", "referable", "ungradable", "shortcut", "synonyms", "retired"]

    def __init__(self, *args, used: set[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_use = bool(self.instance.pk and self.instance.pk in (used or set()))
        if self.in_use:
            # Grades refer to this option: its meaning is fixed; retire it and add a new option instead.
            for name in FIXED_WHEN_USED:
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed: grades use this option. Retire it and add a new one to change it."

    def clean(self):
        data = super().clean()
        if self.in_use and data.get("DELETE"):
            raise ValidationError(
                f"Option {self.instance.code!r} is used by grades and cannot be deleted: tick “retired” instead."
            )
        return data

    def clean_synonyms(self):
        value = self.cleaned_data.get("synonyms") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError('Synonyms must be a list of texts, e.g. ["Mild", "MA only"].')
        return [v.strip() for v in value if v.strip()]


class GradeOptionFormSet(forms.BaseInlineFormSet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._used = used_option_ids(self.instance.pk)

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "used": self._used}


class GradeOptionInline(admin.TabularInline):
    model = GradeOption
    form = GradeOptionForm
    formset = GradeOptionFormSet
    extra = 0


@admin.register(GradeScheme)
class GradeSchemeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "disease",
        "is_active",
        "agreement_rule",
        "agreement_steps",
        "double_grading",
        "blinded",
    ]
    list_filter = ["disease", "is_active", "agreement_rule"]
    search_fields = ["name", "code"]
    inlines = [GradeOptionInline]
    fields = [
        "disease",
        "code",
        "name",
        "description",
        "is_active",
        "agreement_rule",
        "agreement_steps",
        "double_grading",
        "blinded",
        "graders_see_pregraded",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and (
            Grade.objects.filter(scheme=obj).exists() or GradingTask.objects.filter(scheme=obj).exists()
        ):
            return ["disease", "code"]
        return []


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "created_at"]
    search_fields = ["name", "version"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Grade)
class GradeAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "image_id",
        "disease",
        "scheme",
        "option",
        "grader_type",
        "grader",
        "ai_model",
        "is_current",
        "created_at",
    ]
    list_filter = ["grader_type", "is_current", "scheme"]
    list_select_related = ["disease", "scheme", "option", "grader", "ai_model"]
    search_fields = ["=image__id", "grader__username"]


@admin.register(Consensus)
class ConsensusAdmin(ReadOnlyAdmin):
    list_display = ["id", "image_id", "disease", "scheme", "option", "method", "is_current", "created_at"]
    list_filter = ["method", "is_current", "scheme"]
    list_select_related = ["disease", "scheme", "option"]


@admin.register(GradingTask)
class GradingTaskAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "image_id",
        "disease",
        "slot",
        "status",
        "priority",
        "leased_to",
        "lease_expires_at",
        "completed_by",
    ]
    list_filter = ["status", "slot", "disease"]
    list_select_related = ["disease", "leased_to", "completed_by"]
