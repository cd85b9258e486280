"""Safe extraction: every hostile archive of REMIDIO.md is refused or contained, entries are streamed, junk skipped."""

import io
import zipfile

import pytest

from remedio import archive
from tests.remedio import export

LIMITS = archive.Limits(max_entries=200, max_total_bytes=2 * 1024 * 1024, max_entry_bytes=1024 * 1024, max_ratio=100)


def extract(tmp_path, data: bytes, limits=LIMITS) -> archive.Extraction:
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return archive.extract(path, scratch, limits=limits)


def refusal(tmp_path, data: bytes, limits=LIMITS) -> str:
    with pytest.raises(archive.ArchiveRefused) as caught:
        extract(tmp_path, data, limits)
    assert not any((tmp_path / "scratch").iterdir()), "a refused archive leaves no scratch file"
    return caught.value.message


def test_good_export_with_junk(tmp_path):
    data = export.export_zip([export.EncounterSpec(), export.EncounterSpec(patient_id="B2", seed=3, flat=True)], junk=True)
    result = extract(tmp_path, data, archive.Limits.from_settings())
    assert result.skipped == []  # junk is skipped silently
    assert sorted(e.kind for e in result.entries) == ["image"] * 4 + ["report"] * 2
    for entry in result.entries:
        assert entry.path.read_bytes()[:2] in (b"\xff\xd8", b"%P")
        assert entry.path.parent == tmp_path / "scratch"
        assert entry.size == entry.path.stat().st_size


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("traversal", "points outside the archive"),
        ("traversal_backslash", "points outside the archive"),
        ("absolute", "has an absolute path"),
        ("absolute_drive", "has an absolute path"),
        ("symlink", "is a symbolic link"),
        ("encrypted", "is encrypted (password-protected)"),
        ("corrupt", "Corrupt or truncated ZIP archive"),
        ("truncated", "Corrupt or truncated ZIP archive"),
        ("crc", "Corrupt or truncated ZIP archive"),
        ("size_lie", "Corrupt or truncated ZIP archive"),
        ("bomb_ratio", "the signature of an archive bomb"),
        ("bomb_size", "expands to more than 2MB"),
        ("bomb_entries", "entries (max 200 per archive)"),
        ("unsupported_method", "unsupported compression method"),
    ],
)
def test_hostile_archives_are_refused_whole(tmp_path, kind, expected):
    limits = LIMITS
    if kind == "bomb_ratio":
        limits = archive.Limits(max_entries=200, max_total_bytes=64 * 1024 * 1024, max_entry_bytes=32 * 1024 * 1024, max_ratio=100)
    message = refusal(tmp_path, export.hostile(kind), limits)
    assert expected in message
    assert "Nothing was stored" in message


def test_traversal_writes_nothing_outside(tmp_path):
    refusal(tmp_path, export.hostile("traversal"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch", "upload.zip"]
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_messages_never_show_patient_names(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(export.hostile("symlink"))
    (tmp_path / "s").mkdir()
    with pytest.raises(archive.ArchiveRefused) as caught:
        archive.extract(path, tmp_path / "s", limits=LIMITS, shown=lambda parts: "<" + parts[-1] + ">")
    assert "Test_Patient" not in caught.value.message and "<link.jpg>" in caught.value.message


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("nested", "Archive inside the archive (a .zip file): not opened."),
        ("nested_disguised", "Archive inside the archive (a ZIP archive): not opened."),
    ],
)
def test_nested_archives_are_never_opened(tmp_path, kind, reason):
    result = extract(tmp_path, export.hostile(kind), archive.Limits.from_settings())
    assert [r for _, r in result.skipped] == [reason + " Upload it as a separate ZIP file."]
    assert len(result.entries) == 3  # the good encounter beside it
    assert not any("INNER" in "/".join(e.parts) for e in result.entries)


def test_content_must_match_the_extension(tmp_path):
    result = extract(tmp_path, export.hostile("mismatch"), archive.Limits.from_settings())
    reasons = {"/".join(parts[-1:]): reason for parts, reason in result.skipped}
    assert reasons["3.00.00.000_PM.jpg"].startswith("Content does not match the extension: the file is ")
    assert reasons["3.00.00.000_PM.jpg"].endswith(", not image/jpeg.")
    assert reasons["3.00.00.000_PM.pdf"] == (
        "Content does not match the extension: the file is image/jpeg, not application/pdf."
    )
    assert len(result.entries) == 3


def test_other_files_are_listed_not_imported(tmp_path):
    data = export.export_zip(
        [export.EncounterSpec()],
        extra=[("Test_Patient_MRN0001_01-02-2024/notes.txt", b"hello"), ("Test_Patient_MRN0001_01-02-2024/x", b"")],
    )
    result = extract(tmp_path, data, archive.Limits.from_settings())
    assert sorted(reason for _, reason in result.skipped) == [
        "Not a fundus photograph (JPG/PNG) or report (PDF): .txt files are not imported.",
        "Not a fundus photograph (JPG/PNG) or report (PDF): extension-less files are not imported.",
    ]


def test_not_a_zip(tmp_path):
    message = refusal(tmp_path, b"%PDF-1.4 this is a PDF renamed .zip")
    assert message == "Invalid file type: application/pdf. Only ZIP archives (.zip) are allowed."


def test_empty_archive_is_no_error_here(tmp_path):
    out = io.BytesIO()
    zipfile.ZipFile(out, "w").close()
    assert extract(tmp_path, out.getvalue()).entries == []


def test_entries_are_streamed_in_chunks(tmp_path, monkeypatch):
    """No read asks zipfile for a whole entry: every read is bounded by the chunk size."""
    sizes = []
    real_open = zipfile.ZipFile.open

    def tracking_open(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        real_read = handle.read

        def read(n=-1):
            sizes.append(n)
            return real_read(n)

        handle.read = read
        return handle

    monkeypatch.setattr(zipfile.ZipFile, "open", tracking_open)
    monkeypatch.setattr(archive, "CHUNK", 64 * 1024)
    result = extract(tmp_path, export.export_zip([export.EncounterSpec()]), archive.Limits.from_settings())
    assert result.entries and sizes
    assert all(0 < n <= 64 * 1024 for n in sizes)


def test_is_zip_by_content():
    assert archive.is_zip(b"PK\x03\x04rest")
    assert archive.is_zip(b"PK\x05\x06" + bytes(18))
    assert not archive.is_zip(b"\xff\xd8\xff\xe0")
    assert not archive.is_zip(b"")


@pytest.mark.parametrize("kind", ["crc", "size_lie"])
def test_damaged_entry_is_named_as_shown(tmp_path, kind):
    path = tmp_path / "upload.zip"
    path.write_bytes(export.hostile(kind))
    (tmp_path / "s").mkdir()
    with pytest.raises(archive.ArchiveRefused) as caught:
        archive.extract(path, tmp_path / "s", limits=LIMITS, shown=lambda parts: "<" + parts[-1] + ">")
    message = caught.value.message
    assert "Test_Patient" not in message and "MRN0001" not in message
    assert "in entry '<" in message and "Corrupt or truncated ZIP archive" in message
