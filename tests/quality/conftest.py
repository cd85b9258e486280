"""Seeded grading data for quality tests: images with grades and consensus written directly with the models."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Area, Role
from grading.models import AIModel, Consensus, ConsensusMethod, Grade
from grading.quality import units
from tests.grading.factories import ImageFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def manager(make_user, lab_unit):
    return make_user(Role.DATA_MANAGER, lab_units=[lab_unit])


@pytest.fixture
def patient_path(monkeypatch):
    """Patients from the dataset label (a stand-in for the ZIP ingestion's encounter link in these tests)."""
    monkeypatch.setattr(units, "_paths", ["dataset_label"])


class Seeder:
    def __init__(self, lab_unit, scheme, make_user):
        self.lab_unit = lab_unit
        self.scheme = scheme
        self.options = {o.code: o for o in scheme.options.all()}
        self.make_user = make_user
        self._users = {}

    def user(self, name, role=Role.RESIDENT):
        if name not in self._users:
            self._users[name] = self.make_user(role, lab_units=[self.lab_unit], username=name)
        return self._users[name]

    def image(self, **kwargs):
        kwargs.setdefault("lab_unit", self.lab_unit)
        if "area" in kwargs and isinstance(kwargs["area"], str):
            kwargs["area"] = Area.objects.get(code=kwargs["area"])
        return ImageFactory(**kwargs)

    def grade(self, image, grader_type, code, *, grader=None, ai_model=None, probability=None, when=None):
        grade = Grade.objects.create(
            image=image,
            disease_id=image.disease_id,
            scheme=self.scheme,
            option=self.options[code] if code is not None else None,
            raw_value=code or "",
            grader_type=grader_type,
            grader=grader,
            ai_model=ai_model,
            probability=probability,
        )
        if when is not None:
            Grade.objects.filter(pk=grade.pk).update(created_at=when)
        return grade

    def consensus(self, image, code, *, method=ConsensusMethod.AGREEMENT, grades=()):
        record = Consensus.objects.create(
            image=image, disease_id=image.disease_id, scheme=self.scheme, option=self.options[code], method=method
        )
        if grades:
            record.grades.add(*grades)
        return record

    def ai_model(self, name="Screener", version="1.0"):
        return AIModel.objects.get_or_create(name=name, version=version)[0]


@pytest.fixture
def seed(lab_unit, icdr, make_user):
    return Seeder(lab_unit, icdr, make_user)


def month(year, month_, day=15):
    return timezone.make_aware(dt.datetime(year, month_, day, 12, 0))
