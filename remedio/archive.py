"""Safe reading of uploaded ZIP archives, streamed entry by entry to a private scratch folder.

Nothing of an archive is ever held in memory whole: the central directory is checked first (entry count, declared
sizes, compression ratios, paths, symlinks, encryption), then each wanted entry is streamed in chunks to a scratch
file while its real size is counted against the same caps (declared sizes can lie) and its CRC is checked by zipfile.

Policy:

- **The archive is refused** (nothing stored): not a ZIP, corrupt or truncated, any entry with an absolute path or
  ``..`` in its path, a symbolic link, an encrypted entry, an unsupported compression method, or a cap exceeded
  (entries, total uncompressed size, size of one entry, compression ratio).
- **The entry is refused and listed with its reason**, the rest is imported: an archive inside the archive (never
  opened), bytes that do not match the extension, a file type that is neither a photograph nor a report.
- **Junk is skipped silently**: ``__MACOSX/``, ``._*``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, folders.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import magic
from django.conf import settings

CHUNK = 1024 * 1024
SNIFF_BYTES = 4096
# Compression ratios are only checked above this size: small, repetitive files legitimately compress very well.
RATIO_MIN_BYTES = 1024 * 1024

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
REPORT_EXTENSIONS = {".pdf"}
ARCHIVE_EXTENSIONS = {
    ".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz", ".lzma", ".z",
    ".cab", ".jar", ".war", ".apk", ".iso", ".dmg", ".arj", ".lzh",
}  # fmt: skip
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db"}
JUNK_FOLDERS = {"__macosx"}
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
ARCHIVE_SIGNATURES = (
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"PK\x05\x06", "a ZIP archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"BZh", "a bzip2 archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"MSCF", "a cabinet archive"),
    (257, b"ustar", "a tar archive"),
)

MSG_NOT_ZIP = "Invalid file type: {mime}. Only ZIP archives (.zip) are allowed."
MSG_CORRUPT = (
    "Corrupt or truncated ZIP archive ({detail}). Download it again from the Remidio dashboard and upload it again. "
    "Nothing was stored."
)
MSG_ABSOLUTE = "Unsafe archive refused: entry {name!r} has an absolute path. Nothing was stored."
MSG_TRAVERSAL = "Unsafe archive refused: entry {name!r} points outside the archive ('..' in its path). Nothing was stored."
MSG_SYMLINK = (
    "Unsafe archive refused: entry {name!r} is a symbolic link; an archive may contain only files and folders. "
    "Nothing was stored."
)
MSG_ENCRYPTED = (
    "Archive refused: entry {name!r} is encrypted (password-protected). Export the archive again without a password. "
    "Nothing was stored."
)
MSG_COMPRESSION = (
    "Archive refused: entry {name!r} uses an unsupported compression method ({method}); only standard ZIP "
    "compression (stored, deflate, bzip2, LZMA) is accepted. Nothing was stored."
)
MSG_TOO_MANY = "Archive refused: it has {count} entries (max {max} per archive). Nothing was stored."
MSG_TOO_LARGE = (
    "Archive refused: it expands to more than {max} when unpacked (max {max} per archive). Nothing was stored."
)
MSG_ENTRY_TOO_LARGE = "Archive refused: entry {name!r} unpacks to more than {max} (max {max} per entry). Nothing was stored."
MSG_RATIO = (
    "Archive refused: entry {name!r} is compressed {ratio}:1 (max {max}:1), the signature of an archive bomb. "
    "Nothing was stored."
)
MSG_SIZE_LIE = (
    "Archive refused: entry {name!r} unpacks to more bytes than its header declares (a forged archive). "
    "Nothing was stored."
)
SKIP_NESTED = "Archive inside the archive ({what}): not opened. Upload it as a separate ZIP file."
SKIP_MISMATCH = "Content does not match the extension: the file is {actual}, not {expected}."
SKIP_UNSUPPORTED = "Not a fundus photograph (JPG/PNG) or report (PDF): {ext} files are not imported."
SKIP_EMPTY = "Empty file."


class ArchiveRefused(Exception):
    """The whole archive is refused; ``message`` says why and what is allowed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_entries: int
    max_total_bytes: int
    max_entry_bytes: int
    max_ratio: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_entries=settings.REMEDIO_MAX_ENTRIES,
            max_total_bytes=settings.REMEDIO_MAX_UNCOMPRESSED_BYTES,
            max_entry_bytes=settings.REMEDIO_MAX_ENTRY_BYTES,
            max_ratio=settings.REMEDIO_MAX_COMPRESSION_RATIO,
        )


@dataclass
class Entry:
    """A photograph or report streamed to a scratch file. ``parts``: its path inside the archive."""

    parts: tuple[str, ...]
    path: Path
    size: int
    md5: str
    mime: str
    kind: str  # "image" or "report"

    @property
    def leaf(self) -> str:
        return self.parts[-1]


@dataclass
class Extraction:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    entry_count: int = 0


def human_size(size: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size} bytes"


def is_zip(head: bytes) -> bool:
    """ZIP by content: a local file header, or the end record of an empty archive."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def sniff(head: bytes) -> str:
    if not head:
        return "application/x-empty"
    return magic.from_buffer(head[:SNIFF_BYTES], mime=True)


def split_path(raw: str, shown: Callable[[tuple[str, ...]], str]) -> tuple[str, ...]:
    """The entry's path as parts, refusing absolute paths and ``..`` (ZIP tools on Windows write ``\\``)."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveRefused(MSG_ABSOLUTE.format(name=shown(tuple(p for p in name.split("/") if p))))
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ArchiveRefused(MSG_TRAVERSAL.format(name=shown(parts)))
    return parts


def is_junk(parts: tuple[str, ...]) -> bool:
    if any(part.lower() in JUNK_FOLDERS for part in parts):
        return True
    leaf = parts[-1]
    return leaf.startswith("._") or leaf.lower() in JUNK_NAMES


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _archive_signature(head: bytes) -> str | None:
    for offset, signature, what in ARCHIVE_SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return what
    return None


def _classify(parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``(kind, skip_reason)`` from the extension: kind is "image" or "report"."""
    suffix = Path(parts[-1]).suffix.lower()
    if suffix in IMAGE_TYPES:
        return "image", None
    if suffix in REPORT_EXTENSIONS:
        return "report", None
    if suffix in ARCHIVE_EXTENSIONS:
        return None, SKIP_NESTED.format(what=f"a {suffix} file")
    return None, SKIP_UNSUPPORTED.format(ext=suffix or "extension-less")


def _check_content(kind: str, parts: tuple[str, ...], head: bytes) -> tuple[str, str | None]:
    """``(mime, skip_reason)``: the bytes must be what the extension says."""
    nested = _archive_signature(head)
    if nested:
        return "application/zip", SKIP_NESTED.format(what=nested)
    mime = sniff(head)
    if kind == "image":
        expected = IMAGE_TYPES[Path(parts[-1]).suffix.lower()]
        if mime != expected:
            return mime, SKIP_MISMATCH.format(actual=mime, expected=expected)
        return mime, None
    if b"%PDF-" not in head[:1024]:
        return mime, SKIP_MISMATCH.format(actual=mime, expected="application/pdf")
    return "application/pdf", None


_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


def _corrupt(exc: BaseException, entry: str | None = None) -> ArchiveRefused:
    """The refusal of a damaged archive. zipfile's messages quote entry names, which carry the patient's name: quoted
    parts are dropped and the entry is named as ``shown`` gives it."""
    detail = " ".join(_QUOTED.sub("", str(exc)).split()) or exc.__class__.__name__
    if entry is not None:
        detail = f"{detail.rstrip(' .:')} in entry {entry!r}"
    if len(detail) > 120:
        detail = detail[:120] + "…"
    return ArchiveRefused(MSG_CORRUPT.format(detail=detail))


# What zipfile raises for a damaged container or entry (bad headers, cut-off or corrupt compressed data, an
# unsupported compression method).
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError)


def open_zip(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not is_zip(head):
        raise ArchiveRefused(MSG_NOT_ZIP.format(mime=sniff(head)))
    try:
        return zipfile.ZipFile(path)
    except DAMAGED as exc:
        raise _corrupt(exc) from exc


def extract(
    path: Path,
    scratch: Path,
    *,
    limits: Limits | None = None,
    shown: Callable[[tuple[str, ...]], str] = "/".join,
    on_progress: Callable[[], None] | None = None,
) -> Extraction:
    """Check the archive at ``path`` and stream its photographs and reports to files under ``scratch``.

    Raises ArchiveRefused; ``shown(parts)`` turns an entry path into the text used in messages (so messages can leave
    patient names out).
    """
    limits = limits or Limits.from_settings()
    result = Extraction()
    with open_zip(path) as zf:
        try:
            infos = zf.infolist()
        except (zipfile.BadZipFile, ValueError) as exc:
            raise _corrupt(exc) from exc
        result.entry_count = len(infos)
        if len(infos) > limits.max_entries:
            raise ArchiveRefused(MSG_TOO_MANY.format(count=len(infos), max=limits.max_entries))
        if sum(info.file_size for info in infos) > limits.max_total_bytes:
            raise ArchiveRefused(MSG_TOO_LARGE.format(max=human_size(limits.max_total_bytes)))

        wanted: list[tuple[zipfile.ZipInfo, tuple[str, ...], str]] = []
        for info in infos:
            parts = split_path(info.filename, shown)
            if _is_symlink(info):
                raise ArchiveRefused(MSG_SYMLINK.format(name=shown(parts)))
            if info.flag_bits & 0x1:
                raise ArchiveRefused(MSG_ENCRYPTED.format(name=shown(parts)))
            if info.is_dir() or not parts or is_junk(parts):
                continue
            if info.compress_type not in SUPPORTED_COMPRESSION:
                raise ArchiveRefused(MSG_COMPRESSION.format(name=shown(parts), method=info.compress_type))
            if info.file_size > limits.max_entry_bytes:
                raise ArchiveRefused(MSG_ENTRY_TOO_LARGE.format(name=shown(parts), max=human_size(limits.max_entry_bytes)))
            if info.file_size >= RATIO_MIN_BYTES:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_ratio:
                    raise ArchiveRefused(MSG_RATIO.format(name=shown(parts), ratio=int(ratio), max=limits.max_ratio))
            kind, reason = _classify(parts)
            if reason:
                result.skipped.append((parts, reason))
                continue
            wanted.append((info, parts, kind))

        try:
            _stream_all(zf, wanted, scratch, limits, shown, result, on_progress)
        except ArchiveRefused:
            for entry in result.entries:  # a refused archive leaves no scratch file behind
                entry.path.unlink(missing_ok=True)
            raise
    return result


def _stream_all(zf, wanted, scratch: Path, limits: Limits, shown, result: Extraction, on_progress) -> None:
    total = 0
    for index, (info, parts, kind) in enumerate(wanted):
        target = scratch / f"{index:05d}.part"
        size, md5, head = _stream(zf, info, target, parts, limits, total, shown)
        total += size
        if size == 0:
            target.unlink(missing_ok=True)
            result.skipped.append((parts, SKIP_EMPTY))
            continue
        mime, reason = _check_content(kind, parts, head)
        if reason:
            target.unlink(missing_ok=True)
            result.skipped.append((parts, reason))
            continue
        result.entries.append(Entry(parts=parts, path=target, size=size, md5=md5, mime=mime, kind=kind))
        if on_progress is not None and index % 25 == 24:
            on_progress()


def _stream(zf, info, target: Path, parts, limits: Limits, total_before: int, shown) -> tuple[int, str, bytes]:
    """Copy one entry to ``target`` in chunks, counting real bytes against the caps. Returns (size, md5, head)."""
    digest = hashlib.md5()  # noqa: S324 - a content fingerprint (duplicates), not security
    size = 0
    head = b""
    entry_cap = min(limits.max_entry_bytes, info.file_size)
    try:
        with zf.open(info) as source, open(target, "wb") as sink:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > entry_cap:
                    if size > limits.max_entry_bytes:
                        raise ArchiveRefused(
                            MSG_ENTRY_TOO_LARGE.format(name=shown(parts), max=human_size(limits.max_entry_bytes))
                        )
                    raise ArchiveRefused(MSG_SIZE_LIE.format(name=shown(parts)))
                if total_before + size > limits.max_total_bytes:
                    raise ArchiveRefused(MSG_TOO_LARGE.format(max=human_size(limits.max_total_bytes)))
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                digest.update(chunk)
                sink.write(chunk)
    except ArchiveRefused:
        target.unlink(missing_ok=True)
        raise
    except (*DAMAGED, RuntimeError) as exc:
        # CRC mismatch, a cut-off entry, damaged compressed data, or a password needed after all.
        target.unlink(missing_ok=True)
        raise _corrupt(exc, shown(parts)) from exc
    return size, digest.hexdigest(), head
