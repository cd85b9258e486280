"""Rows for grading tests: images without pixels (grading never reads them) made directly in the database."""

import uuid

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.models import Disease
from tests.factories import LabUnitFactory, UserFactory
from uploads.models import Image


class ImageFactory(DjangoModelFactory):
    class Meta:
        model = Image
        skip_postgeneration_save = True

    id = factory.LazyFunction(uuid.uuid4)
    file = factory.LazyAttribute(lambda o: f"2026/01/{o.id.hex}.jpg")
    thumbnail = factory.LazyAttribute(lambda o: f"thumbs/2026/01/{o.id.hex}.jpg")
    original_name = factory.Sequence(lambda n: f"fundus-{n}.jpg")
    md5 = factory.LazyFunction(lambda: uuid.uuid4().hex)
    size = 1000
    mime = "image/jpeg"
    width = 512
    height = 512
    lab_unit = factory.SubFactory(LabUnitFactory)
    hospital = factory.LazyAttribute(lambda o: o.lab_unit.hospital)
    disease = factory.LazyFunction(lambda: Disease.objects.get(code="DR"))
    uploaded_by = factory.SubFactory(UserFactory)

    @factory.post_generation
    def uploaded_at(self, create, extracted, **kwargs):
        # auto_now_add ignores a value given at creation: set it afterwards when a test needs a given age.
        if extracted is not None:
            Image.objects.filter(pk=self.pk).update(uploaded_at=extracted)
            self.uploaded_at = extracted


def an_hour_ago():
    return timezone.now() - timezone.timedelta(hours=1)
