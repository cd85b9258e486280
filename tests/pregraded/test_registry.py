"""The AI model registry: name + version unique together (never merged), registered on its page, through the API, or
while importing; an import selects an existing model by id."""

import pytest

from grading.models import AIModel, Grade
from pregraded.models import GradeImport
from pregraded.services import registry
from tests.pregraded.conftest import csv_bytes, upload


@pytest.fixture
def manager_api(api_client, data_manager):
    api_client.force_authenticate(data_manager)
    return api_client


def test_register_list_and_refuse_the_same_name_and_version(manager_api):
    created = manager_api.post(
        "/api/pregraded/ai-models", {"name": "EyeArt", "version": "2.1", "description": "FDA cleared"}, format="json"
    )
    assert created.status_code == 201 and created.json()["name"] == "EyeArt"
    same = manager_api.post("/api/pregraded/ai-models", {"name": "eyeart", "version": "2.1"}, format="json")
    assert same.status_code == 409
    assert same.json()["detail"] == "The AI model EyeArt 2.1 is already registered: select it instead."
    other = manager_api.post("/api/pregraded/ai-models", {"name": "EyeArt", "version": "2.1.0"}, format="json")
    assert other.status_code == 201  # versions are compared exactly: never merged
    missing = manager_api.post("/api/pregraded/ai-models", {"name": "EyeArt", "version": " "}, format="json")
    assert missing.status_code == 400 and "needs the AI model's name and version" in missing.json()["detail"]
    listed = manager_api.get("/api/pregraded/ai-models").json()
    assert sorted((m["name"], m["version"]) for m in listed) == [("EyeArt", "2.1"), ("EyeArt", "2.1.0")]


def test_registry_page(client, data_manager, uploader):
    client.force_login(uploader)
    assert client.get("/pregraded/ai-models").status_code == 403
    client.force_login(data_manager)
    response = client.post("/pregraded/ai-models", {"name": "IDx-DR", "version": "2.3", "description": ""})
    assert response.status_code == 302
    again = client.post("/pregraded/ai-models", {"name": "IDx-DR", "version": "2.3"})
    assert again.status_code == 409 and "already registered" in again.content.decode()
    page = client.get("/pregraded/ai-models").content.decode()
    assert "IDx-DR" in page and "2.3" in page
    assert AIModel.objects.count() == 1


def test_an_import_selects_a_registered_model_by_id_or_creates_one(
    api_client, data_manager, lab_unit, pregraded_image, run_jobs
):
    pregraded_image("a.jpg")
    model = registry.ai_model_create(name="RetNet", version="1")
    api_client.force_authenticate(data_manager)
    fields = {"grader_type": "ai", "hospital": lab_unit.hospital_id, "lab_unit": lab_unit.pk, "disease": "DR"}
    data = csv_bytes([("image_name", "ai_grade"), ("a.jpg", "1")])
    with run_jobs():
        chosen = api_client.post(
            "/api/pregraded/grades", {**fields, "ai_model": str(model.pk), "file": upload(data, "a.csv")}
        )
    assert chosen.status_code == 202 and chosen.json()["ai_model"]["id"] == model.pk
    assert Grade.objects.get().ai_model_id == model.pk
    unknown = api_client.post("/api/pregraded/grades", {**fields, "ai_model": "999999", "file": upload(data, "b.csv")})
    assert unknown.status_code == 400 and unknown.json()["detail"].startswith("Unknown AI model '999999'")
    with run_jobs():
        named = api_client.post(
            "/api/pregraded/grades",
            {**fields, "ai_model_name": "retnet", "ai_model_version": "1", "file": upload(data, "c.csv")},
        )
    assert named.json()["ai_model"]["id"] == model.pk  # name + version of a registered model selects it
    with run_jobs():
        api_client.post(
            "/api/pregraded/grades",
            {**fields, "ai_model_name": "RetNet", "ai_model_version": "1.1", "file": upload(data, "d.csv")},
        )
    assert AIModel.objects.filter(name="RetNet").count() == 2
    assert GradeImport.objects.count() == 3


def test_ai_imports_name_a_model_and_human_imports_a_grader(lab_unit, data_manager, icdr):
    from django.db import IntegrityError, transaction

    def save(**kwargs):
        GradeImport(
            hospital_id=lab_unit.hospital_id,
            lab_unit=lab_unit,
            disease_id=icdr.disease_id,
            scheme=icdr,
            created_by=data_manager,
            original_name="x.csv",
            file_format="csv",
            **kwargs,
        ).save()

    model = registry.ai_model_create(name="M", version="1")
    for wrong in ({"grader_type": "ai"}, {"grader_type": "resident", "ai_model": model}):
        with pytest.raises(IntegrityError, match="grade_import_grader_or_ai_model"), transaction.atomic():
            save(**wrong)
    save(grader_type="ai", ai_model=model)
    save(grader_type="resident", grader=data_manager)
    assert GradeImport.objects.count() == 2
