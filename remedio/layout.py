"""The layout of a Remidio export (see REMIDIO.md): patient folders, capture times, report hints.

```
<PatientID>_<DD-MM-YYYY>_<h.mm.ss.mmm>_<AM|PM>.zip        the archive name is the download time, not an identity
└── <Name parts…>_<PatientID>_<DD-MM-YYYY>/               patient folder: the identity
    ├── FOP/<h.mm.ss.mmm>_<AM|PM>.jpg                     photographs (or directly in the folder: PRISTINE camera)
    └── REPORTS/<h.mm.ss.mmm>_<AM|PM>.pdf                 Medios AI report(s), optional, names may carry hints
```

Everything here is pure (no database, no files), so every variant is easy to test.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from remedio.archive import Entry
from remedio.identity import normalise_patient_id

_DATE = re.compile(r"^(\d{1,2})[-.](\d{1,2})[-.](\d{4})$")
_TIME = re.compile(
    r"(?<!\d)(\d{1,2})[._:-](\d{2})[._:-](\d{2})(?:[._:-](\d{1,3}))?[ _.-]?(AM|PM)(?![A-Za-z])", re.IGNORECASE
)
_REPORT_HINTS = (
    ("glaucoma", re.compile(r"gla(?:uc|cu)oma|(?<![a-z])gma(?![a-z])", re.IGNORECASE)),
    ("dr", re.compile(r"diabetic|(?<![a-z])dr(?![a-z])|retinopathy", re.IGNORECASE)),
    ("amd", re.compile(r"(?<![a-z])amd(?![a-z])|macular", re.IGNORECASE)),
)

NOT_IN_FOLDER = (
    "Not inside a patient folder: Remidio exports keep each visit in a folder named "
    "<Name>_<PatientID>_<DD-MM-YYYY>. Upload the archive as exported, without restructuring it."
)


@dataclass(frozen=True)
class PatientFolder:
    name: str  # may be empty
    patient_id: str
    capture_date: dt.date


def parse_date(text: str) -> dt.date | None:
    match = _DATE.match(text.strip())
    if not match:
        return None
    day, month, year = (int(group) for group in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_patient_folder(folder: str) -> PatientFolder | None:
    """Read ``<Name parts…>_<PatientID>_<DD-MM-YYYY>`` from the right; the name may contain ``_`` and spaces."""
    parts = folder.strip().split("_")
    if len(parts) < 2:
        return None
    capture_date = parse_date(parts[-1])
    patient_id = parts[-2].strip()
    if capture_date is None or not patient_id or not re.search(r"[0-9A-Za-z]", patient_id):
        return None
    name = " ".join(" ".join(parts[:-2]).split())
    return PatientFolder(name=name, patient_id=patient_id, capture_date=capture_date)


def parse_capture_time(file_name: str) -> dt.time | None:
    """``h.mm.ss.mmm_AM|PM`` in a file name; the noon hour is written ``0`` (``0.02.16.099_PM`` is 12:02:16 PM)."""
    match = _TIME.search(file_name)
    if not match:
        return None
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3))
    millis = match.group(4)
    if hour > 12 or minute > 59 or second > 59:
        return None
    hour = hour % 12 + (12 if match.group(5).upper() == "PM" else 0)
    micro = int(millis.ljust(3, "0")) * 1000 if millis else 0
    return dt.time(hour, minute, second, micro)


def report_hints(file_name: str) -> list[str]:
    """What a report's file name says it is about (``*glaucoma*``, ``*gma*``, ``*dr*``, ``*diabetic*``, ``*amd*``)."""
    stem = file_name.rsplit(".", 1)[0]
    return [kind for kind, pattern in _REPORT_HINTS if pattern.search(stem)]


def folder_index(parts: tuple[str, ...]) -> int | None:
    """Index of the patient folder in an entry path: the deepest parent folder whose name parses."""
    for index in range(len(parts) - 2, -1, -1):
        if parse_patient_folder(parts[index]) is not None:
            return index
    return None


@dataclass
class EncounterLayout:
    folder: PatientFolder
    images: list[Entry] = field(default_factory=list)
    reports: list[Entry] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, dt.date]:
        return (normalise_patient_id(self.folder.patient_id), self.folder.capture_date)


@dataclass
class Layout:
    encounters: list[EncounterLayout] = field(default_factory=list)
    skipped: list[tuple[tuple[str, ...], str]] = field(default_factory=list)


def _image_order(entry: Entry) -> tuple:
    time = parse_capture_time(entry.leaf)
    return (time is None, time or dt.time(0), entry.parts)


def group(entries: list[Entry]) -> Layout:
    """Group extracted entries into encounters (one per patient ID and capture date, in order of appearance)."""
    layout = Layout()
    by_key: dict[tuple[str, dt.date], EncounterLayout] = {}
    for entry in entries:
        index = folder_index(entry.parts)
        if index is None:
            layout.skipped.append((entry.parts, NOT_IN_FOLDER))
            continue
        folder = parse_patient_folder(entry.parts[index])
        key = (normalise_patient_id(folder.patient_id), folder.capture_date)
        encounter = by_key.get(key)
        if encounter is None:
            encounter = by_key[key] = EncounterLayout(folder=folder)
            layout.encounters.append(encounter)
        elif not encounter.folder.name and folder.name:
            encounter.folder = folder
        (encounter.images if entry.kind == "image" else encounter.reports).append(entry)
    for encounter in layout.encounters:
        encounter.images.sort(key=_image_order)
        encounter.reports.sort(key=lambda e: e.parts)
    return layout


def redacted_path(parts: tuple[str, ...], pseudonym) -> str:
    """An entry path fit for messages: a patient folder is shown as ``<pseudonym>_<DD-MM-YYYY>``, never by name.

    ``pseudonym(patient_id) -> str``.
    """
    shown = []
    for part in parts:
        folder = parse_patient_folder(part)
        shown.append(f"{pseudonym(folder.patient_id)}_{folder.capture_date:%d-%m-%Y}" if folder else part)
    return "/".join(shown)[:255]


def redacted_archive_name(file_name: str, pseudonym) -> str:
    """An uploaded archive's name fit for storing and showing: Remidio names archives ``<PatientID>_<DD-MM-YYYY>_…``
    (and some sites ``<Name>_<PatientID>_<DD-MM-YYYY>…``); whatever precedes the date becomes the pseudonym of the ID
    just before it. Names without such a date are kept as they are. ``pseudonym(patient_id) -> str``."""
    stem, dot, ext = file_name.rpartition(".")
    if not dot:
        stem, ext = file_name, ""
    parts = stem.split("_")
    for index in range(1, len(parts)):
        if parse_date(parts[index]) is not None and re.search(r"[0-9A-Za-z]", parts[index - 1]):
            shown = "_".join([pseudonym(parts[index - 1].strip()), *parts[index:]])
            return f"{shown}.{ext}" if dot else shown
    return file_name
