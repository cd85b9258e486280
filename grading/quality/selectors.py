"""Quality figures of a selection: agreement between raters, each rater against the consensus, grader monitoring.

Reads only. Grades and consensus records are fetched as plain rows in a constant number of queries whatever
the size of the selection, turned into arrays indexed by image, and every figure is computed vectorised
(``grading.quality.stats``). Results are cached per selection (``grading.quality.cache``).

What is compared
----------------
* Grades: the current grade (``is_current``) of each rater for each image of the selection, under the selection's
  scheme; a blank grade ("no grade") is no grade. The date range applies to when grades were given.
* Reference: the current consensus of the image under the same scheme. AI grades never become the consensus.
* A human grade that alone decided the reference (a single-grader consensus, a reference imported from that grade,
  the arbitrator's grade of an adjudication) is not compared with it: that would be comparing a grade with itself.
  Such pairs are counted and reported as ``self_reference``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import BigIntegerField, Func, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts import access
from accounts.models import Role, User
from grading.models import AIModel, Consensus, ConsensusMethod, Grade, GraderType
from grading.quality import cache, stats, units
from grading.quality.selection import (
    HUMAN_TYPES,
    PERFORMANCE,
    UNITS,
    Rater,
    Selection,
    SelectionError,
    ai_rater,
    type_rater,
    user_rater,
)

TYPE_CODES = {code: i for i, code in enumerate(GraderType.values)}
AI_CODE = TYPE_CODES[GraderType.AI]
EXPLORER_THRESHOLDS = np.round(np.linspace(0, 1, 101), 2)
ROC_MAX_POINTS = 400
MAX_MONTHS = 240
SERIES_POINTS = 120

UNIT_NOTES = {
    "image": "Each image is one case.",
    "eye": (
        "Each eye of a patient visit is one case (its worst image decides). Eyes are known for images from ZIP "
        "archives with a laterality; any other image counts as one eye of its own."
    ),
    "patient": (
        "Each patient visit is one case, decided by the worse eye. Patients are known only for images from ZIP "
        "archives (their encounter); any other image counts as one patient of its own."
    ),
}

# Published operating points for referable (more-than-mild) diabetic retinopathy, shown beside ROC curves of DR.
PUBLISHED_DR = [
    {"label": "IDx-DR (pivotal trial)", "sensitivity": 0.872, "specificity": 0.907},
    {"label": "EyeArt", "sensitivity": 0.96, "specificity": 0.88},
    {"label": "Google (EyePACS-1)", "sensitivity": 0.903, "specificity": 0.981},
    {"label": "Medios offline AI (Sosale 2020)", "sensitivity": 0.93, "specificity": 0.925},
]


# --- Categories of the scheme --------------------------------------------------------------------------------------


@dataclass
class Categories:
    """The options of a scheme as arrays indexed by category (the options' display order)."""

    ids: np.ndarray
    codes: list[str]
    labels: list[str]
    ordinal: np.ndarray
    ungradable: np.ndarray
    referable: np.ndarray
    positive: np.ndarray  # positive under the selection's threshold (never an ungradable option)
    rank: np.ndarray  # severity rank for "worst of": ungradable 0, then gradable options from least severe
    retired: np.ndarray

    @property
    def k(self) -> int:
        return len(self.codes)

    def index_of(self, option_ids: np.ndarray) -> np.ndarray:
        if self.ids.size == 0:
            return np.full(len(option_ids), -1, dtype=np.int64)
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids[order], option_ids)
        pos = np.clip(pos, 0, len(order) - 1)
        found = self.ids[order][pos] == option_ids
        return np.where(found, order[pos], -1)

    def as_list(self) -> list[dict]:
        return [
            {
                "code": self.codes[i],
                "label": self.labels[i],
                "ordinal": int(self.ordinal[i]),
                "ungradable": bool(self.ungradable[i]),
                "referable": bool(self.referable[i]),
                "positive": bool(self.positive[i]),
            }
            for i in range(self.k)
        ]


def categories_for(sel: Selection) -> Categories:
    options = sel.options
    ordinal = np.array([o.ordinal for o in options], dtype=float)
    ungradable = np.array([o.ungradable for o in options], dtype=bool)
    referable = np.array([o.referable for o in options], dtype=bool)
    scale_positive = referable if sel.threshold is None else ordinal >= sel.threshold.ordinal
    positive = scale_positive & ~ungradable
    order = sorted(range(len(options)), key=lambda i: (not ungradable[i], ordinal[i], referable[i], i))
    rank = np.empty(len(options), dtype=np.int64)
    for position, i in enumerate(order):
        rank[i] = position  # ungradable options sort first, so any gradable grade outranks them
    return Categories(
        ids=np.array([o.pk for o in options], dtype=np.int64),
        codes=[o.code for o in options],
        labels=[o.label for o in options],
        ordinal=ordinal,
        ungradable=ungradable,
        referable=referable,
        positive=positive,
        rank=rank,
        retired=np.array([o.retired for o in options], dtype=bool),
    )


# --- Fetching --------------------------------------------------------------------------------------------------------


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _image_filters(qs, sel: Selection, prefix: str):
    if sel.scope is not None:
        qs = qs.filter(**{f"{prefix}lab_unit_id__in": sorted(sel.scope)})
    if sel.hospital is not None:
        qs = qs.filter(**{f"{prefix}hospital_id": sel.hospital.pk})
    if sel.lab_unit is not None:
        qs = qs.filter(**{f"{prefix}lab_unit_id": sel.lab_unit.pk})
    if sel.dataset:
        qs = qs.filter(**{f"{prefix}dataset_label": sel.dataset})
    return qs


def grades_queryset(sel: Selection, raters: list[Rater] | None = None):
    """Current, non-blank grades of the selection (optionally only those of some raters)."""
    qs = Grade.objects.filter(
        is_current=True, scheme_id=sel.scheme.pk, disease_id=sel.disease.pk, option_id__isnull=False
    )
    qs = _image_filters(qs, sel, "image__")
    if sel.date_from:
        qs = qs.filter(created_at__gte=_day_start(sel.date_from))
    if sel.date_to:
        qs = qs.filter(created_at__lt=_day_start(sel.date_to + dt.timedelta(days=1)))
    if raters:
        wanted = Q()
        for rater in raters:
            if rater.kind == "type":
                wanted |= Q(grader_type=rater.value)
            elif rater.kind == "user":
                wanted |= Q(grader_id=int(rater.value)) & ~Q(grader_type=GraderType.AI)
            else:
                wanted |= Q(ai_model_id=int(rater.value))
        qs = qs.filter(wanted)
    return qs


def consensus_queryset(sel: Selection):
    qs = Consensus.objects.filter(is_current=True, scheme_id=sel.scheme.pk, disease_id=sel.disease.pk)
    return _image_filters(qs, sel, "image__")


@dataclass
class Frame:
    """Grades and reference of a selection as arrays. Images are numbered 0 … n_images-1."""

    n_images: int
    g_id: np.ndarray
    g_img: np.ndarray
    g_type: np.ndarray
    g_user: np.ndarray
    g_ai: np.ndarray
    g_cat: np.ndarray
    g_prob: np.ndarray
    g_month: np.ndarray | None
    ref_cat: np.ndarray
    unit_key: np.ndarray | None
    with_patient: int
    deciding: np.ndarray  # ids of grades that alone decided a reference


class _Epoch(Func):
    """Seconds since 1970 (UTC) of a datetime column, computed by the database: reading datetimes (or extracting
    months with Django's SQLite functions) costs a Python call per row."""

    function = "UNIX_TIMESTAMP"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)", **extra
        )

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)", **extra
        )


def _raw_rows(qs) -> list[tuple]:
    """The rows of a ``values_list`` queryset as the database driver returns them, without Django's per-row
    conversions (UUIDs, integers): the arrays are built from them directly. Image ids are only compared."""
    sql, params = qs.query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _image_key() -> Cast:
    """The image id as text: only compared, and text costs the PostgreSQL driver less than UUID objects (half the
    client CPU of the fetch at 100,000 images)."""
    return Cast("image_id", output_field=TextField())


def _local_months(epochs: np.ndarray) -> np.ndarray:
    """Month index (year * 12 + month - 1) of each UTC timestamp in the current time zone (as ExtractMonth)."""
    if epochs.size == 0:
        return epochs
    hours, inverse = np.unique(epochs // 3600, return_inverse=True)
    tz = timezone.get_current_timezone()
    offsets = np.fromiter(
        (dt.datetime.fromtimestamp(int(h) * 3600, tz).utcoffset().total_seconds() for h in hours),
        dtype=np.int64,
        count=hours.size,
    )
    local = (epochs + offsets[inverse]).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return local + 1970 * 12


def _column(values, dtype, fill=-1):
    return np.fromiter((fill if v is None else v for v in values), dtype=dtype, count=len(values))


def fetch(
    sel: Selection,
    cats: Categories,
    *,
    raters: list[Rater] | None = None,
    reference: bool = True,
    months: bool = False,
    deciding: bool = True,
    users: bool = False,
) -> Frame:
    """Load the selection in at most three queries: grades, consensus (with the image's eye and patient when the
    unit of analysis needs them), and the grades that decided a reference.

    Only the columns the figures need are read (each value read costs time at 100,000 images): grade ids when
    deciding grades are checked, graders when a grader is a rater (``users``), AI models and probabilities when an
    AI model may be one."""
    index: dict = {}
    want_ai = raters is None or any(r.is_ai for r in raters)
    want_user = users or raters is None or any(r.kind == "user" for r in raters)
    want_id = reference and deciding
    fields = ["q_image", "grader_type", "option_id"]
    optional = {
        "id": want_id,
        "grader_id": want_user,
        "ai_model_id": want_ai,
        "probability": want_ai and reference,
    }
    fields += [name for name, wanted in optional.items() if wanted]
    qs = grades_queryset(sel, raters).annotate(q_image=_image_key())
    if months:
        qs = qs.annotate(q_epoch=_Epoch("created_at"))
        fields.append("q_epoch")
    rows = _raw_rows(qs.order_by("id").values_list(*fields))
    n = len(rows)
    cols = dict(zip(fields, zip(*rows, strict=True), strict=True)) if rows else dict.fromkeys(fields, ())
    g_img = np.fromiter((index.setdefault(v, len(index)) for v in cols["q_image"]), dtype=np.int64, count=n)
    g_type = np.fromiter((TYPE_CODES.get(v, -1) for v in cols["grader_type"]), dtype=np.int64, count=n)
    missing = np.full(n, -1, dtype=np.int64)
    frame = Frame(
        n_images=0,
        g_id=np.fromiter(cols["id"], dtype=np.int64, count=n) if want_id else np.arange(n, dtype=np.int64),
        g_img=g_img,
        g_type=g_type,
        g_user=_column(cols["grader_id"], np.int64) if want_user else missing,
        g_ai=_column(cols["ai_model_id"], np.int64) if want_ai else missing,
        g_cat=cats.index_of(np.fromiter(cols["option_id"], dtype=np.int64, count=n)),
        g_prob=_column(cols["probability"], float, np.nan) if "probability" in cols else np.full(n, np.nan),
        g_month=_local_months(_column(cols["q_epoch"], np.int64)) if months else None,
        ref_cat=np.empty(0, dtype=np.int64),
        unit_key=None,
        with_patient=0,
        deciding=np.empty(0, dtype=np.int64),
    )
    if reference:
        unit = sel.unit if sel.kind == PERFORMANCE else "image"
        path = units.patient_path() if unit != "image" else None
        cfields = ["q_image", "option_id"]
        if unit == "eye":
            cfields.append("image__area_id")
        if path:
            cfields.append(f"image__{path}")
        crows = _raw_rows(consensus_queryset(sel).annotate(q_image=_image_key()).order_by().values_list(*cfields))
        c_img = np.fromiter((index.setdefault(r[0], len(index)) for r in crows), dtype=np.int64, count=len(crows))
        c_cat = cats.index_of(np.fromiter((r[1] for r in crows), dtype=np.int64, count=len(crows)))
        frame.n_images = len(index)
        frame.ref_cat = np.full(frame.n_images, -1, dtype=np.int64)
        frame.ref_cat[c_img] = c_cat
        frame.unit_key = _unit_keys(unit, frame.n_images, c_img, crows, cfields, path)
        if path:
            frame.with_patient = sum(1 for r in crows if r[-1] is not None)
        if deciding:
            frame.deciding = _deciding_grades(sel)
    else:
        frame.n_images = len(index)
    return frame


def _unit_keys(unit: str, n_images: int, c_img, crows, cfields, path) -> np.ndarray:
    """A key per image: the image itself, or its eye / patient visit when known (numbered after the images)."""
    keys = np.arange(n_images, dtype=np.int64)
    if unit == "image" or not path or not crows:
        return keys
    visits: dict = {}
    patient = np.fromiter(
        (-1 if r[-1] is None else visits.setdefault(r[-1], len(visits)) for r in crows),
        dtype=np.int64,
        count=len(crows),
    )
    has = patient >= 0
    code = patient
    if unit == "eye":
        area = _column([r[cfields.index("image__area_id")] for r in crows], np.int64)
        has &= area >= 0
        areas, a_idx = np.unique(area, return_inverse=True)
        code = patient * areas.size + a_idx
    keys[c_img[has]] = n_images + code[has]
    return keys


def _deciding_grades(sel: Selection) -> np.ndarray:
    through = Consensus.grades.through
    qs = through.objects.filter(
        consensus__is_current=True,
        consensus__scheme_id=sel.scheme.pk,
        consensus__disease_id=sel.disease.pk,
    ).filter(
        Q(consensus__method__in=[ConsensusMethod.SINGLE_GRADER, ConsensusMethod.IMPORTED_REFERENCE])
        | Q(consensus__method=ConsensusMethod.ADJUDICATION, grade__grader_type=GraderType.ARBITRATION)
    )
    qs = _image_filters(qs, sel, "consensus__image__")
    ids = list(qs.order_by().values_list("grade_id", flat=True))
    return np.array(sorted(ids), dtype=np.int64)


def rater_mask(frame: Frame, rater: Rater) -> np.ndarray:
    if rater.kind == "type":
        return frame.g_type == TYPE_CODES[rater.value]
    if rater.kind == "user":
        return (frame.g_user == int(rater.value)) & (frame.g_type != AI_CODE)
    return frame.g_ai == int(rater.value)


def _per_image(frame: Frame, mask: np.ndarray, values: np.ndarray, fill, dtype) -> np.ndarray:
    """One value per image from the rows in ``mask`` (rows are in id order, so the latest grade wins)."""
    out = np.full(frame.n_images, fill, dtype=dtype)
    out[frame.g_img[mask]] = values[mask]
    return out


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# --- Agreement -------------------------------------------------------------------------------------------------------


def _default_raters(frame: Frame, sel: Selection) -> list[Rater]:
    present = set(np.unique(frame.g_type).tolist())
    return [type_rater(code) for code in HUMAN_TYPES if TYPE_CODES[code] in present]


def agreement(sel: Selection) -> dict:
    """Agreement between every pair of raters on the images both graded, and Fleiss' kappa over the images every
    rater graded when there are more than two raters."""
    cats = categories_for(sel)
    raters = sel.raters or [type_rater(code) for code in HUMAN_TYPES]
    frame = fetch(sel, cats, raters=raters, reference=False, months=True)
    if not sel.raters_explicit:
        raters = _default_raters(frame, sel)
    category_mode = sel.ungradable == "category"
    vectors = {}
    for rater in raters:
        mask = rater_mask(frame, rater)
        cat = _per_image(frame, mask, frame.g_cat, -1, np.int64)
        month = _per_image(frame, mask, frame.g_month, -1, np.int64)
        vectors[rater.token] = (cat, month)

    def usable(cat):
        if category_mode:
            return cat
        return np.where((cat >= 0) & cats.ungradable[np.maximum(cat, 0)], -1, cat)

    pairs = []
    rated_by = np.zeros(frame.n_images, dtype=np.int64)
    for rater in raters:
        rated_by += usable(vectors[rater.token][0]) >= 0
    scores = cats.ordinal
    on_scale = ~cats.ungradable
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            ca_raw, ma = vectors[a.token]
            cb_raw, mb = vectors[b.token]
            both_raw = (ca_raw >= 0) & (cb_raw >= 0)
            ca, cb = usable(ca_raw), usable(cb_raw)
            both = (ca >= 0) & (cb >= 0)
            summary = stats.agreement_summary(ca, cb, cats.k, scores=scores, ordinal=on_scale, ci=sel.ci)
            pair = _pair_output(a, b, summary)
            pair["excluded_ungradable"] = int(both_raw.sum() - both.sum())
            pair["referral"] = _referral_agreement(ca, cb, cats, sel.ci)
            pair["over_time"] = _over_time(np.maximum(ma, mb), ca, cb, both, cats.k)
            pairs.append(pair)
    fleiss = _fleiss(raters, vectors, usable, cats)
    return {
        "selection": sel.describe(),
        "n": int((rated_by >= 2).sum()),
        "raters": [{**r.as_dict(), "n": int((usable(vectors[r.token][0]) >= 0).sum())} for r in raters],
        "pairs": pairs,
        "fleiss_kappa": fleiss,
        "categories": cats.as_list(),
        "reason": None if pairs else _no_pairs_reason(raters),
        "methods": {
            "proportions": stats.WILSON_METHOD,
            "kappa": stats.KAPPA_ANALYTIC_METHOD
            if sel.ci == stats.ANALYTIC
            else stats.KAPPA_BOOTSTRAP_METHOD.format(b=stats.BOOTSTRAP_SAMPLES, seed=stats.BOOTSTRAP_SEED),
            "fleiss_kappa": stats.FLEISS_METHOD.format(b=stats.BOOTSTRAP_SAMPLES, seed=stats.BOOTSTRAP_SEED),
            "weights": "Linear and quadratic weights from the options' ordinal positions; ungradable is off the scale.",
            "unit": "image",
            "ungradable": sel.describe()["ungradable_handling"],
        },
    }


def _no_pairs_reason(raters: list[Rater]) -> str:
    if len(raters) < 2:
        return "Agreement needs grades from at least two raters on the same images; this selection has " + (
            f"grades from {raters[0].label} only." if raters else "no grades."
        )
    return "No pair of raters."


def _pair_output(a: Rater, b: Rater, s: dict) -> dict:
    keys = ("exact", "within_one", "kappa", "kappa_linear", "kappa_quadratic")
    return {
        "a": a.token,
        "b": b.token,
        "a_label": a.label,
        "b_label": b.label,
        "n": s["n"],
        "n_ordinal": s["n_ordinal"],
        **{key: s[key]["value"] for key in keys},
        "ci": {
            key: {"low": s[key]["low"], "high": s[key]["high"], **({"se": s[key]["se"]} if "se" in s[key] else {})}
            for key in keys
        },
        "reasons": {key: s[key]["reason"] for key in keys if s[key]["reason"]},
        "band": s["band"],
        "bands": {key: s[key]["band"] for key in ("kappa", "kappa_linear", "kappa_quadratic")},
        "agreements": {"exact": s["exact"].get("x"), "within_one": s["within_one"].get("x")},
        "confusion": s["confusion"],
    }


def _referral_agreement(ca, cb, cats: Categories, ci: str) -> dict:
    both = (ca >= 0) & (cb >= 0)
    both &= ~cats.ungradable[np.maximum(ca, 0)] & ~cats.ungradable[np.maximum(cb, 0)]
    pa = cats.positive[ca[both]].astype(np.int64)
    pb = cats.positive[cb[both]].astype(np.int64)
    table = stats.confusion_matrix(pa, pb, 2)
    n = int(table.sum())
    return {
        "n": n,
        "exact": stats.proportion(int(np.trace(table)), n, reason="No pair of gradable grades."),
        "kappa": {**stats.kappa_from_table(table, ci=ci), "band": None},
    }


def _over_time(month, ca, cb, both, k: int) -> list[dict]:
    if not both.any():
        return []
    m = month[both]
    first = int(m.min())
    span = min(int(m.max()) - first + 1, MAX_MONTHS)
    first = int(m.max()) - span + 1
    groups = month - first
    groups = np.where(both, groups, -1)
    series = stats.kappa_by_group(groups, ca, cb, k, span)
    out = []
    for g, est in enumerate(series):
        if est.get("n", 0) == 0:
            continue
        out.append(
            {
                "month": _month_label(first + g),
                "n": est["n"],
                "kappa": est["value"],
                "low": est["low"],
                "high": est["high"],
                "exact": est.get("exact"),
                "reason": est["reason"],
            }
        )
    return out


def _fleiss(raters, vectors, usable, cats: Categories) -> dict:
    if len(raters) < 3:
        return stats.undefined(
            f"Fleiss' kappa is reported when more than two raters graded the same images ({len(raters)} selected).",
            n=0,
            raters=len(raters),
        )
    matrix = np.stack([usable(vectors[r.token][0]) for r in raters], axis=1)
    complete = (matrix >= 0).all(axis=1)
    if not complete.any():
        return stats.undefined(f"No image was graded by all {len(raters)} raters.", n=0, raters=len(raters))
    return stats.fleiss_kappa(stats.fleiss_counts(matrix[complete], cats.k))


# --- Performance against the consensus -----------------------------------------------------------------------------


def _present_raters(frame: Frame) -> list[Rater]:
    present = set(np.unique(frame.g_type).tolist())
    raters = [type_rater(code) for code in (*HUMAN_TYPES, GraderType.ARBITRATION) if TYPE_CODES[code] in present]
    ai_ids = sorted(set(np.unique(frame.g_ai[frame.g_ai >= 0]).tolist()))
    if ai_ids:
        raters += [ai_rater(m) for m in AIModel.objects.filter(pk__in=ai_ids).order_by("name", "version")]
    return raters


def _resolve_ai_type(frame: Frame, rater: Rater) -> Rater:
    """ "ai" as a rater means the one AI model of the selection; with several, the caller must choose one."""
    if not (rater.kind == "type" and rater.value == GraderType.AI):
        return rater
    ai_ids = sorted(set(np.unique(frame.g_ai[frame.g_ai >= 0]).tolist()))
    if len(ai_ids) <= 1:
        return ai_rater(AIModel.objects.get(pk=ai_ids[0])) if ai_ids else rater
    names = ", ".join(ai_rater(m).token for m in AIModel.objects.filter(pk__in=ai_ids).order_by("name", "version"))
    raise SelectionError({"rater": f"Several AI models graded these images: choose one of {names}."})


def performance(sel: Selection, rater: Rater) -> dict:
    """One rater against the consensus reference, with the ROC curve and threshold explorer when it gave
    probabilities."""
    cats = categories_for(sel)
    frame = fetch(sel, cats, raters=[rater], deciding=not rater.is_ai)
    return _performance(frame, cats, sel, _resolve_ai_type(frame, rater), detail=True)


def performance_overview(sel: Selection) -> dict:
    """Every rater of the selection against the consensus (one fetch), and the details of one of them: the last rater
    named in the selection, else the first AI model, else the first rater."""
    cats = categories_for(sel)
    frame = fetch(sel, cats)
    raters = _present_raters(frame)
    for rater in sel.raters:
        rater = _resolve_ai_type(frame, rater)
        if rater not in raters:
            raters.append(rater)
    rows = []
    for rater in raters:
        result = _performance(frame, cats, sel, rater, detail=False)
        if rater.kind == "type" and rater.value == GraderType.ARBITRATION and result["n"] == 0:
            continue  # arbitration grades decide their own reference: nothing to compare
        rows.append((rater, result))
    chosen = None
    if sel.raters:
        chosen = _resolve_ai_type(frame, sel.raters[-1])
    elif rows:
        chosen = next((r for r, _ in rows if r.kind == "ai"), rows[0][0])
    return {
        "selection": sel.describe(),
        "raters": [_summary_row(result) for _, result in rows],
        "detail": _performance(frame, cats, sel, chosen, detail=True) if chosen else None,
        "categories": cats.as_list(),
        "reason": None if rows else "No grades in this selection.",
    }


def _summary_row(result: dict) -> dict:
    keep = ("rater", "n", "tp", "fp", "tn", "fn", "sensitivity", "specificity", "ppv", "npv", "auc", "gradable")
    return {key: result[key] for key in keep} | {"counts": result["counts"]}


def _unit_reduce(keys: np.ndarray):
    """Factorise unit keys: (number of units, unit index per case)."""
    if keys.size == 0:
        return 0, keys
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq.size, inverse


def _any(inverse, n_units, flags) -> np.ndarray:
    return np.bincount(inverse, weights=flags.astype(float), minlength=n_units) > 0


def _performance(frame: Frame, cats: Categories, sel: Selection, rater: Rater, *, detail: bool) -> dict:
    mask = rater_mask(frame, rater)
    r_cat = _per_image(frame, mask, frame.g_cat, -1, np.int64)
    r_prob = _per_image(frame, mask, frame.g_prob, np.nan, float)
    r_gid = _per_image(frame, mask, frame.g_id, -1, np.int64)
    graded = r_cat >= 0
    ref = frame.ref_cat
    has_ref = ref >= 0
    self_ref = graded & np.isin(r_gid, frame.deciding) if frame.deciding.size else np.zeros_like(graded)
    paired = graded & has_ref & ~self_ref
    r_u = cats.ungradable[np.maximum(r_cat, 0)] & graded
    f_u = cats.ungradable[np.maximum(ref, 0)] & has_ref
    if sel.ungradable == "excluded":
        keep = paired & ~r_u & ~f_u
        r_pos = cats.positive[np.maximum(r_cat, 0)]
        f_pos = cats.positive[np.maximum(ref, 0)]
    else:
        keep = paired
        r_pos = cats.positive[np.maximum(r_cat, 0)] | r_u
        f_pos = cats.positive[np.maximum(ref, 0)] | f_u
    n_units, inverse = _unit_reduce(frame.unit_key[keep])
    u_r = _any(inverse, n_units, r_pos[keep])
    u_f = _any(inverse, n_units, f_pos[keep])
    counts = stats.binary_counts(u_f, u_r)
    diag = stats.diagnostic(**counts)

    # Full confusion matrix (rows: reference, columns: rater) of the worst grade of each unit.
    rank_to_cat = np.argsort(cats.rank)
    worst_r = np.full(n_units, -1, dtype=np.int64)
    worst_f = np.full(n_units, -1, dtype=np.int64)
    np.maximum.at(worst_r, inverse, cats.rank[r_cat[keep]])
    np.maximum.at(worst_f, inverse, cats.rank[ref[keep]])
    confusion = stats.confusion_matrix(rank_to_cat[np.maximum(worst_f, 0)], rank_to_cat[np.maximum(worst_r, 0)], cats.k)

    images_graded = int(graded.sum())
    result = {
        "rater": {**rater.as_dict(), "value": rater.value},
        "unit": sel.unit,
        "unit_note": UNIT_NOTES[sel.unit],
        "ungradable": sel.ungradable,
        "threshold": sel.threshold.code if sel.threshold else None,
        "positive_means": sel.threshold_label,
        **{key: diag[key] for key in ("n", "tp", "fp", "tn", "fn")},
        **{key: diag[key] for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "prevalence")},
        "gradable": {
            "rater": stats.proportion(
                int((graded & ~r_u).sum()), images_graded, reason="The rater graded no image in this selection."
            ),
            "reference": stats.proportion(
                int((has_ref & ~f_u).sum()), int(has_ref.sum()), reason="No image has a consensus."
            ),
        },
        "counts": {
            "images_graded": images_graded,
            "no_reference": int((graded & ~has_ref).sum()),
            "self_reference": int(self_ref.sum()),
            "excluded_ungradable": int((paired & ~keep).sum()),
            "images_compared": int(keep.sum()),
            "units": int(n_units),
            "images_with_patient": int(frame.with_patient) if sel.unit != "image" else None,
        },
        "confusion": {"rows": "reference", "columns": "rater", "counts": confusion.tolist()},
        "auc": stats.undefined("No probabilities recorded for this rater: the AUC needs scores."),
        "roc": None,
    }
    probs = r_prob[keep]
    has_prob = np.isfinite(probs)
    if has_prob.any():
        u_prob = np.full(n_units, -np.inf)
        np.maximum.at(u_prob, inverse[has_prob], probs[has_prob])
        scored = np.isfinite(u_prob)
        y, s = u_f[scored], u_prob[scored]
        result["auc"] = {**stats.auc_delong(y, s), "n": int(scored.sum())}
        both_classes = bool(y.any() and (~y).any())
        if detail and both_classes:  # with one class the curve is undefined, as the AUC is
            curve = stats.roc_curve(y, s, max_points=ROC_MAX_POINTS)
            result["roc"] = [
                [f, t, thr] for f, t, thr in zip(curve["fpr"], curve["tpr"], curve["thresholds"], strict=True)
            ]
            result["roc_thinned"] = curve["thinned"]
            result["youden"] = stats.youden_optimum(y, s)
        if detail:
            result["thresholds"] = stats.threshold_table(y, s, EXPLORER_THRESHOLDS)
    if detail:
        sens, spec = diag["sensitivity"]["value"], diag["specificity"]["value"]
        result["operating_point"] = {"fpr": 1 - spec, "tpr": sens} if sens is not None and spec is not None else None
        result["published"] = PUBLISHED_DR if sel.disease.code.upper() == "DR" else []
        result["methods"] = {
            "proportions": stats.WILSON_METHOD,
            "auc": stats.DELONG_METHOD,
            "unit": UNITS[sel.unit],
            "ungradable": sel.describe()["ungradable_handling"],
            "reference": "Current consensus of each image under the scheme.",
        }
        result["selection"] = sel.describe()
        result["roc"] = result["roc"] if result["roc"] is not None else []
    return result


# --- Grader monitoring -----------------------------------------------------------------------------------------------


def monitoring(sel: Selection) -> dict:
    """Running sensitivity and specificity of each grader (in the order they graded) against the final labels, and
    flags for those below the configured minimums (AIROGS protocol defaults)."""
    cats = categories_for(sel)
    frame = fetch(
        sel, cats, raters=[Rater("type", t, t, t) for t in (*HUMAN_TYPES, GraderType.ARBITRATION)], users=True
    )
    min_sens = settings.QUALITY_MIN_SENSITIVITY
    min_spec = settings.QUALITY_MIN_SPECIFICITY
    min_cases = settings.QUALITY_MONITOR_MIN_CASES
    window = settings.QUALITY_MONITOR_WINDOW
    human = (frame.g_user >= 0) & (frame.g_type != AI_CODE)
    ref = frame.ref_cat[frame.g_img]
    has_ref = ref >= 0
    decided = np.isin(frame.g_id, frame.deciding) if frame.deciding.size else np.zeros(frame.g_id.size, bool)
    r_u = cats.ungradable[np.maximum(frame.g_cat, 0)]
    f_u = cats.ungradable[np.maximum(ref, 0)] & has_ref
    usable = human & has_ref & ~decided & (frame.g_cat >= 0)
    if sel.ungradable == "excluded":
        usable &= ~r_u & ~f_u
        r_pos = cats.positive[np.maximum(frame.g_cat, 0)]
        f_pos = cats.positive[np.maximum(ref, 0)]
    else:
        r_pos = cats.positive[np.maximum(frame.g_cat, 0)] | r_u
        f_pos = cats.positive[np.maximum(ref, 0)] | f_u
    user_ids = sorted(set(np.unique(frame.g_user[human]).tolist()))
    names = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
    graders = []
    for user_id in user_ids:
        rows = usable & (frame.g_user == user_id)  # rows are in id order: the order grades were given
        truth = f_pos[rows]
        said = r_pos[rows]
        entry = _monitor_entry(truth, said, min_sens, min_spec, min_cases, window)
        entry.update({"user_id": user_id, "username": names.get(user_id, f"#{user_id}")})
        entry["graded"] = int((human & (frame.g_user == user_id)).sum())
        graders.append(entry)
    graders.sort(key=lambda g: (g["status"] != "flagged", g["status"] != "ok", g["username"]))
    return {
        "selection": sel.describe(),
        "thresholds": {
            "sensitivity": min_sens,
            "specificity": min_spec,
            "min_cases": min_cases,
            "window": window,
        },
        "graders": graders,
        "flagged": sum(1 for g in graders if g["status"] == "flagged"),
        "reason": None if graders else "No grader's grades in this selection.",
        "methods": {
            "reference": "Current consensus (final label) of each image; grades that alone decided it are left out.",
            "running": "Cumulative over each grader's grades in the order they were given; window: the last "
            f"{window} compared grades.",
            "flag": f"Flagged when the running sensitivity is below {min_sens:.0%} (with at least {min_cases} "
            f"referable cases) or the running specificity below {min_spec:.0%} (with at least {min_cases} "
            "non-referable cases).",
            "proportions": stats.WILSON_METHOD,
        },
    }


def _monitor_entry(truth, said, min_sens, min_spec, min_cases, window) -> dict:
    counts = stats.binary_counts(truth, said)
    diag = stats.diagnostic(**counts)
    tail = slice(max(0, truth.size - window), truth.size)
    recent = stats.diagnostic(**stats.binary_counts(truth[tail], said[tail]))
    positives = counts["tp"] + counts["fn"]
    negatives = counts["tn"] + counts["fp"]
    flags = []
    sens, spec = diag["sensitivity"], diag["specificity"]
    if positives >= min_cases and sens["value"] is not None and sens["value"] < min_sens:
        flags.append("sensitivity")
    if negatives >= min_cases and spec["value"] is not None and spec["value"] < min_spec:
        flags.append("specificity")
    if flags:
        status = "flagged"
    elif positives >= min_cases and negatives >= min_cases:
        status = "ok"
    else:
        status = "too_few"
    significant = [
        name
        for name, est, limit in (("sensitivity", sens, min_sens), ("specificity", spec, min_spec))
        if name in flags and est["high"] is not None and est["high"] < limit
    ]
    # Running (cumulative) values after each compared grade, thinned for a sparkline.
    tp = np.cumsum(truth & said)
    fn = np.cumsum(truth & ~said)
    tn = np.cumsum(~truth & ~said)
    fp = np.cumsum(~truth & said)
    with np.errstate(divide="ignore", invalid="ignore"):
        run_sens = tp / (tp + fn)
        run_spec = tn / (tn + fp)
    idx = np.unique(np.linspace(0, truth.size - 1, min(truth.size, SERIES_POINTS)).astype(int)) if truth.size else []
    return {
        "n": int(truth.size),
        "positives": positives,
        "negatives": negatives,
        "sensitivity": sens,
        "specificity": spec,
        "window": {
            "n": int(truth[tail].size),
            "sensitivity": recent["sensitivity"],
            "specificity": recent["specificity"],
        },
        "flags": flags,
        "significant": significant,
        "status": status,
        "series": {
            "index": [int(i) + 1 for i in idx],
            "sensitivity": [stats.finite(run_sens[i]) for i in idx],
            "specificity": [stats.finite(run_spec[i]) for i in idx],
        },
    }


# --- Cached entry points --------------------------------------------------------------------------------------------


def agreement_cached(sel: Selection) -> tuple[dict, bool]:
    return cache.cached("agreement", sel.key(), lambda: agreement(sel))


def performance_cached(sel: Selection, rater: Rater) -> tuple[dict, bool]:
    return cache.cached("performance", sel.key(rater.token), lambda: performance(sel, rater))


def performance_overview_cached(sel: Selection) -> tuple[dict, bool]:
    return cache.cached("overview", sel.key(), lambda: performance_overview(sel))


def monitoring_cached(sel: Selection) -> tuple[dict, bool]:
    limits = (
        settings.QUALITY_MIN_SENSITIVITY,
        settings.QUALITY_MIN_SPECIFICITY,
        settings.QUALITY_MONITOR_MIN_CASES,
        settings.QUALITY_MONITOR_WINDOW,
    )
    return cache.cached("monitoring", sel.key(*limits), lambda: monitoring(sel))


# --- Form choices ----------------------------------------------------------------------------------------------------


def rater_choices(user) -> dict:
    """Raters a user can pick: grader types, graders of their lab units, AI model versions (two queries)."""
    graders = User.objects.filter(is_active=True, role_rows__role__in=[Role.RESIDENT, Role.OPHTHALMOLOGIST])
    ids = access.lab_unit_ids(user)
    if ids is not None:
        graders = graders.filter(lab_units__in=ids)
    return {
        "types": [type_rater(code) for code in (*HUMAN_TYPES, GraderType.ARBITRATION)],
        "graders": [user_rater(u) for u in graders.distinct().order_by("username")],
        "ai": [ai_rater(m) for m in AIModel.objects.order_by("name", "version")],
    }
