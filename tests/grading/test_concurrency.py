"""Exact under concurrency, on a real PostgreSQL: graders asking at the same moment never share a slot, and two
grades landing together still produce exactly one consensus or arbitration."""

import threading

import pytest
from django.db import connection

from accounts.models import Role
from grading import services
from grading.models import Consensus, GradingTask

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(workers):
    """Run the callables in threads released by one barrier; return their results (exceptions re-raised)."""
    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)
    errors: list = []

    def run(index, fn):
        try:
            barrier.wait(timeout=30)
            results[index] = fn()
        except Exception as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def test_twenty_graders_at_once_get_twenty_distinct_slots(postgres_only, queued_image, make_user, lab_unit):
    for _ in range(10):
        queued_image()  # 10 images x 2 slots
    graders = [make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit]) for _ in range(20)]
    tasks = run_together([lambda user=user: services.task_next(user=user, disease="DR") for user in graders])
    assert all(task is not None for task in tasks)
    assert len({task.pk for task in tasks}) == 20
    leased = GradingTask.objects.filter(status="leased")
    assert leased.count() == 20
    assert len(set(leased.values_list("leased_to", flat=True))) == 20


def test_more_graders_than_slots(postgres_only, queued_image, make_user, lab_unit):
    for _ in range(3):
        queued_image()  # 6 slots
    graders = [make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit]) for _ in range(20)]
    tasks = run_together([lambda user=user: services.task_next(user=user, disease="DR") for user in graders])
    got = [task.pk for task in tasks if task is not None]
    assert len(got) == 6 and len(set(got)) == 6


def test_one_grader_asking_twice_at_once_holds_one_slot(postgres_only, queued_image, ophthalmologist):
    for _ in range(5):
        queued_image()
    tasks = run_together([lambda: services.task_next(user=ophthalmologist, disease="DR") for _ in range(6)])
    assert len({task.pk for task in tasks}) == 1
    assert GradingTask.objects.filter(leased_to=ophthalmologist).count() == 1


def test_two_slots_graded_at_the_same_moment_decide_once(postgres_only, queued_image, make_user, lab_unit):
    pairs = []
    for index in range(8):
        queued_image()
        resident = make_user(Role.RESIDENT, lab_units=[lab_unit])
        senior = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
        primary = services.task_next(user=resident, disease="DR")
        secondary = services.task_next(user=senior, disease="DR")
        assert primary.image_id == secondary.image_id
        # Even images agree, odd ones disagree.
        pairs.append((resident, primary, "2", senior, secondary, "2" if index % 2 == 0 else "4"))
    workers = []
    for resident, primary, first, senior, secondary, second in pairs:
        workers.append(lambda u=resident, t=primary, o=first: services.grade_submit(user=u, task_id=t.pk, option=o))
        workers.append(lambda u=senior, t=secondary, o=second: services.grade_submit(user=u, task_id=t.pk, option=o))
    run_together(workers)
    for index, (_, primary, *_rest) in enumerate(pairs):
        consensus = Consensus.objects.filter(image_id=primary.image_id)
        arbitration = GradingTask.objects.filter(image_id=primary.image_id, slot="arbitration")
        if index % 2 == 0:
            assert consensus.count() == 1 and not arbitration.exists()
        else:
            assert not consensus.exists() and arbitration.count() == 1
