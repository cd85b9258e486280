"""What a quality figure is computed over: a selection of images and grades, parsed from query parameters.

Pages, the API and the exports read the same parameters, so a figure on a page, in the API and in a report of the
same selection is the same figure:

``disease`` (code or id; default: the first disease with an active scheme), ``scheme`` (code; default: the active
scheme of the disease), ``hospital`` and ``lab_unit`` (id or code, inside the user's lab units), ``dataset`` (dataset
label), ``date_from`` / ``date_to`` (YYYY-MM-DD, when the grades were given), ``rater`` (repeated or comma-separated:
a grader type, a grader's username, ``user:<username>``, ``ai:<model>:<version>`` or ``ai:<id>``), ``unit`` (image,
eye, patient), ``ungradable`` (excluded, referable for performance; excluded, category for agreement), ``threshold``
(an option code of the scheme: positive from that grade up; default the scheme's referable definition), ``ci``
(analytic, bootstrap).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from django.db.models import Q
from django.http import Http404

from accounts import access
from accounts.models import Disease, Hospital, LabUnit, User
from common.api import ServiceError
from grading.models import AIModel, GradeOption, GraderType, GradeScheme
from grading.quality import stats

AGREEMENT = "agreement"
PERFORMANCE = "performance"
MONITORING = "monitoring"

UNITS = {
    "image": "Image",
    "eye": "Eye",
    "patient": "Patient (worse eye)",
}
UNGRADABLE_CHOICES = {
    AGREEMENT: {
        "excluded": "Excluded (pairs where a grade is ungradable are left out)",
        "category": "Counted as a grade of its own (nominal statistics only)",
    },
    PERFORMANCE: {
        "excluded": "Excluded (cases ungradable by the rater or the reference are left out)",
        "referable": "Counted as referable (by the rater and by the reference)",
    },
}
UNGRADABLE_CHOICES[MONITORING] = UNGRADABLE_CHOICES[PERFORMANCE]
CI_CHOICES = {
    stats.ANALYTIC: "Analytic (asymptotic standard error)",
    stats.BOOTSTRAP: "Bootstrap (2,000 resamples of images)",
}
MAX_RATERS = 12
HUMAN_TYPES = (GraderType.PRIMARY, GraderType.SECONDARY, GraderType.RESIDENT, GraderType.RESIDENT2)
TYPE_LABELS = dict(GraderType.choices)


class SelectionError(ServiceError):
    """Bad query parameters: ``errors`` maps each parameter to what was wrong and what is allowed."""

    def __init__(self, errors: dict[str, str]):
        message = " ".join(errors.values())
        super().__init__(message, errors=errors)
        self.errors = errors


@dataclass(frozen=True)
class Rater:
    """Who gave grades: every grade of a grader type, of one grader, or of one AI model version."""

    kind: str  # "type", "user" or "ai"
    value: str  # grader type code, user id, AI model id
    token: str  # how the API names it: "primary", "alice", "ai:Medios AI:2.1"
    label: str

    @property
    def is_ai(self) -> bool:
        return self.kind == "ai" or (self.kind == "type" and self.value == GraderType.AI)

    def as_dict(self) -> dict:
        return {"token": self.token, "label": self.label, "kind": self.kind}


def type_rater(code: str) -> Rater:
    return Rater("type", code, code, str(TYPE_LABELS[code]))


def ai_rater(model: AIModel) -> Rater:
    return Rater("ai", str(model.pk), f"ai:{model.name}:{model.version}", f"{model.name} {model.version}")


def user_rater(user: User) -> Rater:
    return Rater("user", str(user.pk), user.username, user.username)


@dataclass
class Selection:
    disease: Disease
    scheme: GradeScheme
    options: list[GradeOption]
    hospital: Hospital | None = None
    lab_unit: LabUnit | None = None
    dataset: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    raters: list[Rater] = field(default_factory=list)
    raters_explicit: bool = False
    unit: str = "image"
    ungradable: str = "excluded"
    threshold: GradeOption | None = None
    ci: str = stats.ANALYTIC
    kind: str = AGREEMENT
    scope: frozenset[int] | None = None  # the user's lab units; None = every lab unit

    def key(self, *extra) -> str:
        """A stable digest of everything the figures depend on (the data stamp is added by the cache)."""
        parts = [
            self.kind,
            self.disease.pk,
            self.scheme.pk,
            self.hospital.pk if self.hospital else None,
            self.lab_unit.pk if self.lab_unit else None,
            self.dataset,
            self.date_from.isoformat() if self.date_from else None,
            self.date_to.isoformat() if self.date_to else None,
            [r.token for r in self.raters],
            self.raters_explicit,
            self.unit,
            self.ungradable,
            self.threshold.pk if self.threshold else None,
            self.ci,
            sorted(self.scope) if self.scope is not None else "all",
            *extra,
        ]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()

    @property
    def threshold_label(self) -> str:
        if self.threshold is None:
            codes = ", ".join(o.code for o in self.options if o.referable and not o.ungradable)
            return f"Referable as the scheme defines it ({codes or 'no referable option'})"
        return f"{self.threshold.code} ({self.threshold.label}) or worse"

    def describe(self) -> dict:
        """The selection in words and codes, returned with every figure so it can be cited."""
        return {
            "disease": self.disease.code,
            "scheme": self.scheme.code,
            "scheme_name": self.scheme.name,
            "hospital": self.hospital.code if self.hospital else None,
            "lab_unit": self.lab_unit.code if self.lab_unit else None,
            "dataset": self.dataset or None,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "raters": [r.token for r in self.raters] if self.raters_explicit else None,
            "unit": self.unit if self.kind == PERFORMANCE else "image",
            "ungradable": self.ungradable,
            "ungradable_handling": UNGRADABLE_CHOICES[self.kind][self.ungradable],
            "threshold": self.threshold.code if self.threshold else None,
            "positive_means": self.threshold_label,
            "ci": self.ci,
        }

    def query_params(self, **override) -> dict:
        """Query parameters that reproduce this selection (for links, exports and the API)."""
        params = {
            "disease": self.disease.code,
            "scheme": self.scheme.code,
            "hospital": self.hospital.code if self.hospital else "",
            "lab_unit": self.lab_unit.code if self.lab_unit else "",
            "dataset": self.dataset,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "rater": [r.token for r in self.raters] if self.raters_explicit else [],
            "unit": self.unit if self.kind == PERFORMANCE else "",
            "ungradable": self.ungradable,
            "threshold": self.threshold.code if self.threshold else "",
            "ci": self.ci if self.ci != stats.ANALYTIC else "",
        }
        params.update(override)
        return {k: v for k, v in params.items() if v not in ("", None, [])}


def _values(params, name: str) -> list[str]:
    """Repeated and comma-separated values of a parameter (QueryDict or dict)."""
    if hasattr(params, "getlist"):
        raw = params.getlist(name)
    else:
        value = params.get(name)
        raw = value if isinstance(value, list | tuple) else ([] if value is None else [value])
    out = []
    for item in raw:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def _one(params, name: str) -> str:
    values = _values(params, name)
    return values[-1] if values else ""


def _by_id_or_code(qs, value: str):
    if value.isdigit():
        return qs.filter(pk=int(value)).first()
    return qs.filter(code__iexact=value).first()


def _date(value: str, name: str, errors: dict) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors[name] = f"{name} must be a date written YYYY-MM-DD (got {value[:30]!r})."
        return None


def parse(user, params, *, kind: str, single_rater: bool = False) -> Selection:
    """Resolve and validate query parameters into a Selection.

    Raises SelectionError (400) listing every bad parameter with what is allowed, and Http404 for a hospital or lab
    unit outside the user's lab units (never a hint that it exists)."""
    errors: dict[str, str] = {}

    disease_value = _one(params, "disease")
    if disease_value:
        disease = _by_id_or_code(Disease.objects.all(), disease_value)
        if disease is None:
            allowed = ", ".join(Disease.objects.values_list("code", flat=True))
            raise SelectionError({"disease": f"Unknown disease {disease_value[:40]!r}: use one of {allowed}."})
    else:
        disease = Disease.objects.filter(grade_schemes__is_active=True).order_by("id").first()
        if disease is None:
            raise SelectionError({"disease": "No disease has an active grade scheme yet."})

    schemes = GradeScheme.objects.filter(Q(disease=disease) | Q(disease__isnull=True)).prefetch_related("options")
    scheme_value = _one(params, "scheme")
    if scheme_value:
        scheme = next((s for s in schemes if s.code.casefold() == scheme_value.casefold()), None)
        if scheme is None:
            allowed = ", ".join(s.code for s in schemes)
            raise SelectionError(
                {"scheme": f"Unknown scheme {scheme_value[:40]!r} for {disease.code}: use one of {allowed}."}
            )
    else:
        scheme = next((s for s in schemes if s.is_active and s.disease_id == disease.pk), None)
        if scheme is None:
            allowed = ", ".join(s.code for s in schemes) or "none exists"
            raise SelectionError(
                {"scheme": f"{disease.code} has no active grade scheme: choose one with scheme= ({allowed})."}
            )
    options = sorted(scheme.options.all(), key=lambda o: (o.ungradable, o.ordinal, o.pk))

    scope_ids = access.lab_unit_ids(user)
    hospital = lab_unit = None
    hospital_value = _one(params, "hospital")
    if hospital_value:
        hospital = _by_id_or_code(access.hospitals(user), hospital_value)
        if hospital is None:
            raise Http404("Not found.")
    unit_value = _one(params, "lab_unit")
    if unit_value:
        lab_unit = _by_id_or_code(access.lab_units(user), unit_value)
        if lab_unit is None:
            raise Http404("Not found.")
        if hospital is not None and lab_unit.hospital_id != hospital.pk:
            errors["lab_unit"] = f"Lab unit {lab_unit.code} is not a lab unit of {hospital.name}."

    dataset = _one(params, "dataset")
    if len(dataset) > 120:
        errors["dataset"] = "dataset is a dataset label of at most 120 characters."
    date_from = _date(_one(params, "date_from"), "date_from", errors)
    date_to = _date(_one(params, "date_to"), "date_to", errors)
    if date_from and date_to and date_from > date_to:
        errors["date_to"] = "date_to must not be before date_from."

    allowed_unit = ", ".join(UNITS)
    unit = _one(params, "unit").lower() or "image"
    if unit not in UNITS:
        errors["unit"] = f"Unknown unit of analysis {unit[:20]!r}: use one of {allowed_unit}."
    elif kind != PERFORMANCE and unit != "image":
        errors["unit"] = f"{kind.capitalize()} is computed per image; the unit of analysis applies to performance."

    choices = UNGRADABLE_CHOICES[kind]
    ungradable = _one(params, "ungradable").lower() or "excluded"
    if ungradable not in choices:
        errors["ungradable"] = (
            f"Unknown handling of ungradable images {ungradable[:20]!r}: use one of {', '.join(choices)}."
        )

    threshold = None
    threshold_value = _one(params, "threshold")
    if threshold_value and threshold_value.lower() != "referable":
        threshold = next(
            (o for o in options if o.code.casefold() == threshold_value.casefold() and not o.ungradable), None
        )
        if threshold is None:
            allowed = ", ".join(o.code for o in options if not o.ungradable)
            errors["threshold"] = (
                f"Unknown threshold {threshold_value[:20]!r} for {scheme.code}: use referable or a grade of the "
                f"scale ({allowed})."
            )

    ci = _one(params, "ci").lower() or stats.ANALYTIC
    if ci not in CI_CHOICES:
        errors["ci"] = f"Unknown interval method {ci[:20]!r}: use one of {', '.join(CI_CHOICES)}."

    raters = _raters(user, _values(params, "rater"), scope_ids, errors)
    if single_rater and len(raters) > 1:
        errors["rater"] = "Give one rater for performance (a grader type, a username or ai:<model>:<version>)."

    if errors:
        raise SelectionError(errors)
    return Selection(
        disease=disease,
        scheme=scheme,
        options=options,
        hospital=hospital,
        lab_unit=lab_unit,
        dataset=dataset,
        date_from=date_from,
        date_to=date_to,
        raters=raters,
        raters_explicit=bool(raters),
        unit=unit,
        ungradable=ungradable,
        threshold=threshold,
        ci=ci,
        kind=kind,
        scope=scope_ids,
    )


RATER_HELP = (
    "use a grader type (primary, secondary, arbitration, resident, resident2, ai), a grader's username "
    "(or user:<username>) or ai:<model>:<version>"
)


def _raters(user, tokens: list[str], scope_ids, errors: dict) -> list[Rater]:
    if not tokens:
        return []
    if len(tokens) > MAX_RATERS:
        errors["rater"] = f"At most {MAX_RATERS} raters at a time (got {len(tokens)})."
        return []
    usernames = []
    ai_wanted = []
    for token in tokens:
        low = token.lower()
        if low in GraderType.values:
            continue
        if low.startswith("ai:"):
            ai_wanted.append(token[3:])
        else:
            usernames.append(token[5:] if low.startswith("user:") else token)
    users = {}
    if usernames:
        qs = User.objects.filter(username__in=usernames)
        if scope_ids is not None:
            qs = qs.filter(lab_units__in=scope_ids).distinct()
        users = {u.username: u for u in qs}
    models = list(AIModel.objects.all()) if ai_wanted else []
    out: list[Rater] = []
    unknown = []
    for token in tokens:
        low = token.lower()
        if low in GraderType.values:
            rater = type_rater(low)
        elif low.startswith("ai:"):
            rater = _ai_from(token[3:], models)
        else:
            found = users.get(token[5:] if low.startswith("user:") else token)
            rater = user_rater(found) if found else None
        if rater is None:
            unknown.append(token)
        elif rater not in out:
            out.append(rater)
    if unknown:
        names = ", ".join(repr(t[:60]) for t in unknown)
        hint = ""
        if any(t.lower().startswith("ai:") for t in unknown):
            known = ", ".join(f"ai:{m.name}:{m.version}" for m in AIModel.objects.all()) or "none registered"
            hint = f" AI models: {known}."
        errors["rater"] = f"Unknown rater {names}: {RATER_HELP}.{hint}"
    return out


def _ai_from(spec: str, models: list[AIModel]) -> Rater | None:
    if spec.isdigit():
        match = next((m for m in models if m.pk == int(spec)), None)
        return ai_rater(match) if match else None
    if ":" not in spec:
        matches = [m for m in models if m.name.casefold() == spec.casefold()]
        return ai_rater(matches[0]) if len(matches) == 1 else None
    name, version = spec.rsplit(":", 1)
    match = next(
        (m for m in models if m.name.casefold() == name.casefold() and m.version.casefold() == version.casefold()),
        None,
    )
    return ai_rater(match) if match else None
