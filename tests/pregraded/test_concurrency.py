"""Exact under concurrency, on a real PostgreSQL: a mapping confirmed twice at the same moment queues one job, two
imports registering the same new AI model version at once share one model, and two imports of one AI model take
turns."""

import threading
import time

import pytest
from django.db import connection, transaction

from common.api import Conflict
from grading.models import AIModel, Grade
from jobs.models import Job
from pregraded.models import GradeImport
from pregraded.services import imports, registry
from tests.pregraded.conftest import csv_bytes, upload

pytestmark = pytest.mark.postgres


def run_together(workers):
    """Run the callables in threads released by one barrier; return results or the exceptions they raised."""
    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)

    def run(index, fn):
        try:
            barrier.wait(timeout=30)
            results[index] = fn()
        except Exception as exc:  # returned to the test, which checks which ones failed and how
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _fields(lab_unit, **extra):
    return {
        "grader_type": "ai",
        "hospital": lab_unit.hospital_id,
        "lab_unit": lab_unit.pk,
        "disease": "DR",
        "ai_model_name": "EyeArt",
        "ai_model_version": "2.1",
        **extra,
    }


def test_a_mapping_confirmed_twice_at_once_queues_one_job(
    postgres_only, transactional_db, data_manager, lab_unit, pregraded_image
):
    pregraded_image("a.jpg")
    imp = imports.grade_import_create(
        user=data_manager,
        data=_fields(lab_unit),
        uploaded=upload(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "odd")]), "g.csv"),
    )
    assert imp.status == "needs_mapping"
    results = run_together(
        [
            lambda code=code: imports.grade_import_map(user=data_manager, import_id=imp.pk, mapping={"odd": code})
            for code in ("1", "2", "3", "4")
        ]
    )
    done = [r for r in results if isinstance(r, GradeImport)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(done) == 1 and len(refused) == 3, results
    assert Job.objects.filter(kind="grade_import").count() == 1
    imp.refresh_from_db()
    assert imp.status == "done", imp.error
    assert Grade.objects.get().option.code == imp.mapping[next(iter(imp.mapping))]["option"]


def test_imports_registering_the_same_model_at_once_share_it(postgres_only, transactional_db):
    results = run_together([lambda: registry.ai_model_resolve(name="NewNet", version="0.9") for _ in range(6)])
    assert all(isinstance(r, AIModel) for r in results), results
    assert len({r.pk for r in results}) == 1 and AIModel.objects.filter(name="NewNet").count() == 1


def test_an_import_of_an_ai_model_waits_for_another_one_of_the_same_model(
    postgres_only, transactional_db, lab_unit, pregraded_image
):
    """The second import starts while the first one's transaction is still open: it waits for it (instead of failing
    on the one-current-grade constraint) and then supersedes every grade the first one wrote."""
    from accounts.models import Disease
    from grading import selectors
    from grading import services as grading_services

    dr = Disease.objects.get(code="DR")
    scheme = selectors.scheme_for(dr)
    model = AIModel.objects.create(name="EyeArt", version="2.1")
    images = [pregraded_image(f"c{i}.jpg") for i in range(30)]
    grading_services.grading_tasks_create_bulk(images=images)  # queued already: the imports create no task to wait on
    first_written = threading.Event()

    def run(code):
        option = selectors.option_match(scheme, code)
        rows = [{"image_id": str(image.pk), "option_id": option.pk, "raw_value": code} for image in images]
        return grading_services.grades_import_bulk(
            rows=rows, grader_type="ai", disease=dr, scheme=scheme, ai_model=model, batch_size=7
        )

    def first():
        with transaction.atomic():
            counts = run("1")
            first_written.set()
            time.sleep(0.5)  # the second import starts meanwhile
        return counts

    def second():
        assert first_written.wait(timeout=30)
        return run("3")

    results = run_together([first, second])
    assert all(isinstance(r, dict) and r["imported"] == 30 for r in results), results
    assert [r["superseded"] for r in results] == [0, 30]
    current = Grade.objects.filter(ai_model=model, is_current=True)
    assert current.count() == 30 and {g.option.code for g in current} == {"3"}
    assert all(g.supersedes.option.code == "1" and g.supersedes.ai_model_id == model.pk for g in current)
