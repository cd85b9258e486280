import pytest

from accounts.models import Role
from grading import services
from tests.grading.factories import ImageFactory


@pytest.fixture
def arbitrator(make_user, lab_unit):
    return make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])


@pytest.fixture
def make_image(lab_unit, make_user):
    def make(**kwargs):
        kwargs.setdefault("lab_unit", lab_unit)
        return ImageFactory(**kwargs)

    return make


@pytest.fixture
def queued_image(make_image):
    """An image with its grading tasks (DR, ICDR, primary + secondary)."""

    def make(**kwargs):
        image = make_image(**kwargs)
        services.grading_tasks_create(image=image)
        return image

    return make
