"""Where the grading of an image stands, recomputed after every change: consensus, arbitration, queue priority, and
the image's grading status. One function for single grades and bulk imports alike, with a constant number of queries.

Callers hold row locks on the images' tasks (``lock_tasks``), so two graders finishing the two slots of one image at
the same moment are serialised and the second one sees the first one's grade.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from grading.models import Consensus, ConsensusMethod, Grade, GradingTask, Slot
from grading.services.rules import agreed_option, options_agree
from uploads.models import GradingStatus
from uploads.services import image_set_grading_status

PRIORITY_FRESH = 0
PRIORITY_HALF_GRADED = 1
PRIORITY_ARBITRATION = 2


@dataclass
class Outcome:
    """What changed for one image x disease: a new consensus, a newly queued arbitration."""

    consensus: Consensus | None = None
    arbitration_queued: GradingTask | None = None
    status: str = GradingStatus.AWAITING


@dataclass
class _Plan:
    new_consensus: list[tuple[Consensus, list[int], Consensus | None]] = field(default_factory=list)
    new_tasks: list[GradingTask] = field(default_factory=list)
    changed_tasks: dict[int, GradingTask] = field(default_factory=dict)


def lock_tasks(image_ids) -> list[GradingTask]:
    """Lock (PostgreSQL: FOR UPDATE, in id order so lockers never deadlock) and return every task of the images."""
    return list(
        GradingTask.objects.select_for_update(of=("self",))
        .filter(image_id__in=list(image_ids))
        .select_related("scheme")
        .order_by("id")
    )


@transaction.atomic(savepoint=False)
def evaluate(image_ids, tasks: list[GradingTask] | None = None) -> dict[tuple, Outcome]:
    """Bring consensus, arbitration tasks, priorities and grading statuses of these images up to date.

    ``tasks``: the images' tasks, already locked by the caller (loaded here otherwise). Returns an Outcome per
    (image_id, disease_id) that has tasks.
    """
    image_ids = list(dict.fromkeys(image_ids))
    if not image_ids:
        return {}
    if tasks is None:
        tasks = lock_tasks(image_ids)
    by_key: dict[tuple, dict[str, GradingTask]] = defaultdict(dict)
    for task in tasks:
        by_key[(task.image_id, task.disease_id)][task.slot] = task
    grades_by_task: dict[int, Grade] = {}
    for grade in Grade.objects.filter(
        image_id__in=image_ids, is_current=True, task__isnull=False, option__isnull=False
    ).select_related("option"):
        grades_by_task[grade.task_id] = grade
    current: dict[tuple, Consensus] = {}
    for record in Consensus.objects.filter(image_id__in=image_ids, is_current=True).prefetch_related(
        Prefetch("grades", queryset=Grade.objects.only("id"))
    ):
        current[(record.image_id, record.disease_id, record.scheme_id)] = record

    now = timezone.now()
    plan = _Plan()
    outcomes: dict[tuple, Outcome] = {}
    for key, slots in by_key.items():
        outcomes[key] = _evaluate_one(key, slots, grades_by_task, current, plan, now)

    _write(plan)
    statuses: dict[str, list] = defaultdict(list)
    per_image: dict = defaultdict(list)
    for (image_id, _disease_id), outcome in outcomes.items():
        per_image[str(image_id)].append(outcome.status)
    for image_id in image_ids:
        statuses[_image_status(per_image.get(str(image_id), []))].append(image_id)
    for status, ids in statuses.items():
        image_set_grading_status(image_ids=ids, status=status)
    return outcomes


def _image_status(statuses: list[str]) -> str:
    if not statuses:
        return GradingStatus.NOT_QUEUED
    if all(s == GradingStatus.GRADED for s in statuses):
        return GradingStatus.GRADED
    for status in (GradingStatus.IN_ARBITRATION, GradingStatus.IN_PROGRESS):
        if status in statuses:
            return status
    if GradingStatus.GRADED in statuses:
        return GradingStatus.IN_PROGRESS
    return GradingStatus.AWAITING


def _set(task: GradingTask, plan: _Plan, **values) -> None:
    changed = False
    for name, value in values.items():
        if getattr(task, name) != value:
            setattr(task, name, value)
            changed = True
    if changed and task.pk:
        plan.changed_tasks[task.pk] = task


def _consensus(plan, key, scheme, option, method, grades, previous, decided_by=None) -> Consensus:
    image_id, disease_id = key
    record = Consensus(
        image_id=image_id,
        disease_id=disease_id,
        scheme=scheme,
        option=option,
        method=method,
        decided_by_id=decided_by,
        supersedes=previous,
    )
    plan.new_consensus.append((record, [g.pk for g in grades], previous))
    return record


def _evaluate_one(key, slots, grades_by_task, current, plan: _Plan, now) -> Outcome:
    primary = slots.get(Slot.PRIMARY)
    secondary = slots.get(Slot.SECONDARY)
    arbitration = slots.get(Slot.ARBITRATION)
    anchor = primary or secondary or arbitration
    scheme = anchor.scheme
    existing = current.get((key[0], key[1], scheme.pk))
    existing_grade_ids = {g.pk for g in existing.grades.all()} if existing else set()

    def done_grade(task):
        if task is None or task.status != GradingTask.Status.DONE:
            return None
        return grades_by_task.get(task.pk)

    p, s, a = done_grade(primary), done_grade(secondary), done_grade(arbitration)
    outcome = Outcome()

    # Queue order: the remaining slot of a half-graded image comes before fresh images.
    for task, other in ((primary, s), (secondary, p)):
        if task is not None and task.status in GradingTask.OPEN:
            _set(task, plan, priority=PRIORITY_HALF_GRADED if other else PRIORITY_FRESH)

    if existing is not None and existing.method == ConsensusMethod.IMPORTED_REFERENCE:
        # A reference recorded from outside decides; a pending arbitration is no longer needed.
        if arbitration is not None and arbitration.status in GradingTask.OPEN:
            _set(arbitration, plan, status=GradingTask.Status.CANCELLED, leased_to=None, lease_expires_at=None)
        outcome.status = GradingStatus.GRADED
        return outcome

    if a is not None:
        wanted = {g.pk for g in (p, s, a) if g is not None}
        if existing is None or existing.method != ConsensusMethod.ADJUDICATION or existing_grade_ids != wanted:
            outcome.consensus = _consensus(
                plan,
                key,
                scheme,
                a.option,
                ConsensusMethod.ADJUDICATION,
                [g for g in (p, s, a) if g is not None],
                existing,
                decided_by=a.grader_id,
            )
        outcome.status = GradingStatus.GRADED
        return outcome

    if not scheme.double_grading:
        single = p or s
        if single is not None:
            if existing is None or existing_grade_ids != {single.pk}:
                outcome.consensus = _consensus(
                    plan, key, scheme, single.option, ConsensusMethod.SINGLE_GRADER, [single], existing
                )
            outcome.status = GradingStatus.GRADED
        else:
            outcome.status = GradingStatus.AWAITING
        return outcome

    if p is not None and s is not None:
        if options_agree(scheme, p.option, s.option):
            if existing is None or existing_grade_ids != {p.pk, s.pk}:
                outcome.consensus = _consensus(
                    plan, key, scheme, agreed_option(p.option, s.option), ConsensusMethod.AGREEMENT, [p, s], existing
                )
            outcome.status = GradingStatus.GRADED
            return outcome
        if arbitration is None:
            arbitration = GradingTask(
                image_id=key[0],
                disease_id=key[1],
                scheme=scheme,
                lab_unit_id=anchor.lab_unit_id,
                slot=Slot.ARBITRATION,
                priority=PRIORITY_ARBITRATION,
                queued_at=anchor.queued_at,
            )
            plan.new_tasks.append(arbitration)
            outcome.arbitration_queued = arbitration
        elif arbitration.status == GradingTask.Status.CANCELLED:
            _set(arbitration, plan, status=GradingTask.Status.PENDING, priority=PRIORITY_ARBITRATION)
            outcome.arbitration_queued = arbitration
        outcome.status = GradingStatus.IN_ARBITRATION
        return outcome

    if existing is not None:
        outcome.status = GradingStatus.GRADED
    elif p is not None or s is not None:
        outcome.status = GradingStatus.IN_PROGRESS
    else:
        outcome.status = GradingStatus.AWAITING
    return outcome


def _write(plan: _Plan) -> None:
    if plan.changed_tasks:
        GradingTask.objects.bulk_update(
            list(plan.changed_tasks.values()), ["priority", "status", "leased_to", "lease_expires_at"]
        )
    if plan.new_tasks:
        GradingTask.objects.bulk_create(plan.new_tasks)
    if plan.new_consensus:
        previous_ids = [prev.pk for _, _, prev in plan.new_consensus if prev is not None]
        if previous_ids:
            Consensus.objects.filter(pk__in=previous_ids).update(is_current=False)
        created = Consensus.objects.bulk_create([record for record, _, _ in plan.new_consensus])
        Through = Consensus.grades.through
        Through.objects.bulk_create(
            [
                Through(consensus_id=record.pk, grade_id=grade_id)
                for record, (_, grade_ids, _) in zip(created, plan.new_consensus, strict=True)
                for grade_id in grade_ids
            ]
        )
