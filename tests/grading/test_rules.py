"""Consensus rules per scheme, table-driven: pure rule checks, then the same cases end to end through the queue."""

import pytest

from grading import services
from grading.models import AgreementRule, Consensus, GradeScheme, GradingTask
from grading.services.rules import agreed_option, options_agree

# scheme code, rule override (None: as seeded), steps, primary, secondary, agree?, consensus option
CASES = [
    # ICDR, exact (as seeded)
    ("icdr", None, 1, "2", "2", True, "2"),
    ("icdr", None, 1, "1", "2", False, None),
    ("icdr", None, 1, "0", "4", False, None),
    ("icdr", None, 1, "U", "U", True, "U"),
    ("icdr", None, 1, "U", "0", False, None),
    ("icdr", None, 1, "4", "U", False, None),
    # ICDR, same referral class
    ("icdr", AgreementRule.REFERRAL, 1, "0", "1", True, "1"),
    ("icdr", AgreementRule.REFERRAL, 1, "2", "4", True, "4"),
    ("icdr", AgreementRule.REFERRAL, 1, "1", "2", False, None),
    ("icdr", AgreementRule.REFERRAL, 1, "U", "0", False, None),
    # ICDR, within N steps
    ("icdr", AgreementRule.WITHIN_STEPS, 1, "1", "2", True, "2"),
    ("icdr", AgreementRule.WITHIN_STEPS, 1, "1", "3", False, None),
    ("icdr", AgreementRule.WITHIN_STEPS, 2, "1", "3", True, "3"),
    ("icdr", AgreementRule.WITHIN_STEPS, 0, "1", "2", False, None),
    ("icdr", AgreementRule.WITHIN_STEPS, 4, "0", "U", False, None),
    # Glaucoma screening, exact
    ("glaucoma", None, 1, "RG", "RG", True, "RG"),
    ("glaucoma", None, 1, "NRG", "RG", False, None),
    ("glaucoma", None, 1, "U", "NRG", False, None),
    # Glaucoma, clinical wording: same referral class (as seeded)
    ("glaucoma-clinical", None, 1, "suspect", "glaucoma", True, "glaucoma"),
    ("glaucoma-clinical", None, 1, "normal", "suspect", False, None),
    # AMD, exact / within one step
    ("amd-beckman", None, 1, "early", "early", True, "early"),
    ("amd-beckman", None, 1, "early", "intermediate", False, None),
    ("amd-beckman", AgreementRule.WITHIN_STEPS, 1, "early", "intermediate", True, "intermediate"),
    # NHS DESP: R2L and R2 share an ordinal but not a referral class
    ("nhs-desp", AgreementRule.WITHIN_STEPS, 1, "R2L", "R2", True, "R2"),
    ("nhs-desp", AgreementRule.REFERRAL, 1, "R2L", "R2H", False, None),
]


def _scheme(code, rule, steps):
    scheme = GradeScheme.objects.prefetch_related("options").get(code=code)
    if rule is not None:
        scheme.agreement_rule = rule
        scheme.agreement_steps = steps
    return scheme


def _option(scheme, code):
    return next(o for o in scheme.options.all() if o.code == code)


@pytest.mark.django_db
@pytest.mark.parametrize(("code", "rule", "steps", "first", "second", "agree", "expected"), CASES)
def test_agreement_rules(code, rule, steps, first, second, agree, expected):
    scheme = _scheme(code, rule, steps)
    a, b = _option(scheme, first), _option(scheme, second)
    assert options_agree(scheme, a, b) is agree
    assert options_agree(scheme, b, a) is agree  # symmetric
    if agree:
        assert agreed_option(a, b).code == expected
        assert agreed_option(b, a).code == expected


DISEASE_OF = {"icdr": "DR", "glaucoma": "GLAUCOMA", "amd-beckman": "AMD"}


@pytest.mark.parametrize(
    ("code", "rule", "steps", "first", "second", "agree", "expected"),
    [case for case in CASES if case[0] in DISEASE_OF],
)
def test_consensus_through_the_queue(
    code, rule, steps, first, second, agree, expected, queued_image, resident, ophthalmologist
):
    from accounts.models import Disease

    disease = Disease.objects.get(code=DISEASE_OF[code])
    if rule is not None:
        GradeScheme.objects.filter(code=code).update(agreement_rule=rule, agreement_steps=steps)
    image = queued_image(disease=disease)
    primary = services.task_next(user=resident, disease=disease)
    services.grade_submit(user=resident, task_id=primary.pk, option=first)
    secondary = services.task_next(user=ophthalmologist, disease=disease)
    result = services.grade_submit(user=ophthalmologist, task_id=secondary.pk, option=second)
    image.refresh_from_db()
    if agree:
        assert result.consensus is not None
        record = Consensus.objects.get(image=image, is_current=True)
        assert record.method == "agreement"
        assert record.option.code == expected
        assert {g.grader_id for g in record.grades.all()} == {resident.pk, ophthalmologist.pk}
        assert image.grading_status == "graded"
        assert not GradingTask.objects.filter(image=image, slot="arbitration").exists()
    else:
        assert result.consensus is None and result.arbitration_queued
        assert not Consensus.objects.filter(image=image).exists()
        assert GradingTask.objects.get(image=image, slot="arbitration").status == "pending"
        assert image.grading_status == "in_arbitration"


def test_single_grader_scheme_records_the_one_grade(queued_image, resident):
    GradeScheme.objects.filter(code="icdr").update(double_grading=False)
    image = queued_image()
    assert list(GradingTask.objects.filter(image=image).values_list("slot", flat=True)) == ["primary"]
    task = services.task_next(user=resident, disease="DR")
    result = services.grade_submit(user=resident, task_id=task.pk, option="3")
    assert result.consensus.method == "single_grader"
    assert result.consensus.option.code == "3"
