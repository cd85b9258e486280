import factory
from factory.django import DjangoModelFactory

from accounts.models import Area, Camera, Disease, Hospital, LabUnit, Role, User, UserRole


class HospitalFactory(DjangoModelFactory):
    class Meta:
        model = Hospital

    code = factory.Sequence(lambda n: f"hospital-{n}")
    name = factory.Sequence(lambda n: f"Hospital {n}")


class LabUnitFactory(DjangoModelFactory):
    class Meta:
        model = LabUnit

    hospital = factory.SubFactory(HospitalFactory)
    code = factory.Sequence(lambda n: f"unit-{n}")
    name = factory.Sequence(lambda n: f"Lab unit {n}")


class CameraFactory(DjangoModelFactory):
    class Meta:
        model = Camera

    code = factory.Sequence(lambda n: f"camera-{n}")
    name = factory.Sequence(lambda n: f"Camera {n}")


class UserFactory(DjangoModelFactory):
    """``UserFactory(roles=["uploader"], lab_units=[unit])``."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or []:
            UserRole.objects.create(user=self, role=role)
        if Role.ADMIN in (extracted or []):
            self.is_staff = True
        self.save()

    @factory.post_generation
    def lab_units(self, create, extracted, **kwargs):
        if extracted:
            self.lab_units.set(extracted)


def disease(code: str = "DR") -> Disease:
    return Disease.objects.get(code=code)


def area(code: str = "left") -> Area:
    return Area.objects.get(code=code)
