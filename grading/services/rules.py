"""Agreement rules: pure functions, no database."""

from __future__ import annotations

from grading.models import AgreementRule, GradeOption, GradeScheme


def options_agree(scheme: GradeScheme, a: GradeOption, b: GradeOption) -> bool:
    """Whether two grades agree under the scheme's rule.

    "Ungradable" against a grade is always a disagreement; two "ungradable" agree. Otherwise: the same option
    (exact), the same referral class (referral), or at most ``agreement_steps`` ordinal steps apart (within_steps).
    """
    if a.ungradable or b.ungradable:
        return a.ungradable and b.ungradable
    if a.pk == b.pk:
        return True
    if scheme.agreement_rule == AgreementRule.REFERRAL:
        return a.referable == b.referable
    if scheme.agreement_rule == AgreementRule.WITHIN_STEPS:
        return abs(a.ordinal - b.ordinal) <= scheme.agreement_steps
    return False


def agreed_option(a: GradeOption, b: GradeOption) -> GradeOption:
    """The consensus of two agreeing grades: the more severe one (higher ordinal, then referable), as a reading
    center refers on the worse of two agreeing readings."""
    if a.pk == b.pk:
        return a
    return max((a, b), key=lambda o: (o.ordinal, o.referable, -o.pk))
