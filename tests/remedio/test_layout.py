"""The layout parser on every variant of REMIDIO.md (pure functions: no database, no files)."""

import datetime as dt
from pathlib import Path

import pytest

from remedio import layout
from remedio.archive import Entry


@pytest.mark.parametrize(
    ("folder", "name", "patient_id", "date"),
    [
        ("Asha_Verma_MRN0042_01-02-2024", "Asha Verma", "MRN0042", dt.date(2024, 2, 1)),
        ("Asha Verma_MRN0042_01-02-2024", "Asha Verma", "MRN0042", dt.date(2024, 2, 1)),
        ("Mary_Ann_de_la_Cruz_77_31-12-2023", "Mary Ann de la Cruz", "77", dt.date(2023, 12, 31)),
        ("SINGLE_A-19_5-6-2024", "SINGLE", "A-19", dt.date(2024, 6, 5)),
        ("MRN0042_01-02-2024", "", "MRN0042", dt.date(2024, 2, 1)),
        ("Li_X1_01.02.2024", "Li", "X1", dt.date(2024, 2, 1)),
        ("Name with  spaces_ID 7_01-02-2024", "Name with spaces", "ID 7", dt.date(2024, 2, 1)),
    ],
)
def test_patient_folder_is_read_from_the_right(folder, name, patient_id, date):
    parsed = layout.parse_patient_folder(folder)
    assert parsed == layout.PatientFolder(name=name, patient_id=patient_id, capture_date=date)


@pytest.mark.parametrize(
    "folder",
    ["FOP", "REPORTS", "Asha_Verma", "Asha_MRN1_31-02-2024", "Asha_MRN1_2024-02-01", "_01-02-2024", "Asha__01-02-2024",
     "10.02.16.099_AM", "MRN0042_01-02-2024_10.02.16.099_AM"],
)  # fmt: skip
def test_folders_that_are_not_patient_folders(folder):
    assert layout.parse_patient_folder(folder) is None


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("10.02.16.099_AM.jpg", dt.time(10, 2, 16, 99000)),
        ("0.02.16.099_PM.jpg", dt.time(12, 2, 16, 99000)),  # noon is written 0
        ("12.02.16.099_PM.jpg", dt.time(12, 2, 16, 99000)),
        ("0.15.00.000_AM.jpg", dt.time(0, 15)),
        ("12.15.00.000_AM.jpg", dt.time(0, 15)),
        ("1.05.09.5_pm.JPG", dt.time(13, 5, 9, 500000)),
        ("3.04.05_PM.jpeg", dt.time(15, 4, 5)),
        ("11.59.59.999 PM.png", dt.time(23, 59, 59, 999000)),
        ("glaucoma_4.30.00.120_PM.pdf", dt.time(16, 30, 0, 120000)),
    ],
)
def test_capture_time_in_twelve_hour_names(file_name, expected):
    assert layout.parse_capture_time(file_name) == expected


@pytest.mark.parametrize("file_name", ["IMG_0001.jpg", "13.00.00.000_PM.jpg", "10.61.00.000_AM.jpg", "report.pdf"])
def test_names_without_a_readable_time(file_name):
    assert layout.parse_capture_time(file_name) is None


@pytest.mark.parametrize(
    ("file_name", "hints"),
    [
        ("10.02.16.099_AM.pdf", []),
        ("glaucoma_10.02.16.099_AM.pdf", ["glaucoma"]),
        ("Glacuoma report.pdf", ["glaucoma"]),
        ("GMA_10.02.pdf", ["glaucoma"]),
        ("dr_10.02.16.099_AM.pdf", ["dr"]),
        ("Diabetic-Retinopathy.pdf", ["dr"]),
        ("DR_AMD_report.pdf", ["dr", "amd"]),
        ("address.pdf", []),  # "dr" inside a word is no hint
    ],
)
def test_report_name_hints(file_name, hints):
    assert layout.report_hints(file_name) == hints


def entry(path: str, kind: str | None = None) -> Entry:
    parts = tuple(path.split("/"))
    kind = kind or ("report" if path.endswith(".pdf") else "image")
    return Entry(parts=parts, path=Path("/nonexistent"), size=1, md5=path, mime="", kind=kind)


def test_group_every_layout_variant():
    entries = [
        # the usual export: FOP/ and REPORTS/
        entry("Asha_Verma_MRN1_01-02-2024/FOP/10.05.00.000_AM.jpg"),
        entry("Asha_Verma_MRN1_01-02-2024/FOP/0.02.16.099_PM.jpg"),
        entry("Asha_Verma_MRN1_01-02-2024/FOP/9.59.00.000_AM.jpg"),
        entry("Asha_Verma_MRN1_01-02-2024/REPORTS/10.10.00.000_AM.pdf"),
        # PRISTINE camera: photographs directly in the folder, reports with hints
        entry("Ravi_Kumar_MRN2_02-02-2024/1.00.00.000_PM.jpg"),
        entry("Ravi_Kumar_MRN2_02-02-2024/REPORTS/glaucoma_1.10.00.000_PM.pdf"),
        entry("Ravi_Kumar_MRN2_02-02-2024/REPORTS/dr_1.10.00.000_PM.pdf"),
        # photographs without a report, inside an extra top folder
        entry("export/Li_MRN3_03-02-2024/FOP/8.00.00.000_AM.jpg"),
        # the same visit split over two folder spellings links up (ID compared without case or spaces)
        entry("mrn 1_01-02-2024/FOP/11.00.00.000_AM.jpg"),
        # outside any patient folder
        entry("FOP/7.00.00.000_AM.jpg"),
        entry("loose.jpg"),
    ]
    grouped = layout.group(entries)
    assert [e.folder.patient_id for e in grouped.encounters] == ["MRN1", "MRN2", "MRN3"]
    first, second, third = grouped.encounters
    assert first.folder.name == "Asha Verma"
    assert [e.leaf for e in first.images] == [
        "9.59.00.000_AM.jpg",
        "10.05.00.000_AM.jpg",
        "11.00.00.000_AM.jpg",
        "0.02.16.099_PM.jpg",
    ]
    assert [e.leaf for e in first.reports] == ["10.10.00.000_AM.pdf"]
    assert [e.leaf for e in second.images] == ["1.00.00.000_PM.jpg"]
    assert sorted(e.leaf for e in second.reports) == ["dr_1.10.00.000_PM.pdf", "glaucoma_1.10.00.000_PM.pdf"]
    assert [e.leaf for e in third.images] == ["8.00.00.000_AM.jpg"] and third.reports == []
    assert [parts for parts, _ in grouped.skipped] == [("FOP", "7.00.00.000_AM.jpg"), ("loose.jpg",)]
    assert all(reason == layout.NOT_IN_FOLDER for _, reason in grouped.skipped)


def test_many_encounter_folders_in_one_archive():
    entries = [entry(f"P{i}_ID{i}_01-02-2024/FOP/10.00.00.000_AM.jpg") for i in range(120)]
    grouped = layout.group(entries)
    assert len(grouped.encounters) == 120
    assert {e.folder.patient_id for e in grouped.encounters} == {f"ID{i}" for i in range(120)}


def test_same_patient_two_dates_are_two_encounters():
    grouped = layout.group(
        [entry("A_ID1_01-02-2024/FOP/10.00.00.000_AM.jpg"), entry("A_ID1_02-02-2024/FOP/10.00.00.000_AM.jpg")]
    )
    assert [e.folder.capture_date.day for e in grouped.encounters] == [1, 2]


def test_redacted_paths_never_show_the_name():
    shown = layout.redacted_path(
        ("Asha_Verma_MRN1_01-02-2024", "FOP", "x.jpg"), lambda patient_id: f"P-{patient_id[::-1]}"
    )
    assert shown == "P-1NRM_01-02-2024/FOP/x.jpg"
    assert "Asha" not in shown and "Verma" not in shown


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MRN0042_01-02-2024_10.02.16.099_AM.zip", "<MRN0042>_01-02-2024_10.02.16.099_AM.zip"),
        ("Asha_Verma_MRN0042_01-02-2024.zip", "<MRN0042>_01-02-2024.zip"),
        ("export-march.zip", "export-march.zip"),
        ("2024_01-02-2024", "<2024>_01-02-2024"),
    ],
)
def test_archive_names_lose_the_patient_id(name, expected):
    assert layout.redacted_archive_name(name, lambda pid: f"<{pid}>") == expected
