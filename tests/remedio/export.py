"""Synthetic Remidio exports for tests and benchmarks: never real patient data.

- photographs: fundus-like JPEGs (optic disc on a chosen side), optionally with burnt-in text in a corner band;
- reports: Medios AI style PDFs either rasterised (every page one image, as the phones produce them) or with a real
  text layer (a minimal PDF writer, Helvetica), optionally encrypted with a user password (RC4, standard handler);
- archives: any number of patient folders, ``FOP/`` or flat, junk entries, and every hostile variant of REMIDIO.md
  through a raw ZIP writer that can produce what ``zipfile`` refuses to write (encrypted entries, lying headers, …).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.images import fundus_array

# --- Photographs ----------------------------------------------------------------------------------------------------


def fundus_image(
    *,
    seed: int = 0,
    size: tuple[int, int] = (640, 640),
    disc_side: str = "right",
    band_text: str | None = None,
    band_corner: str = "top-left",
) -> Image.Image:
    width, height = size
    img = Image.fromarray(fundus_array(width, height, seed=seed, disc_side=disc_side))
    if band_text:
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=max(12, height // 28))
        box = draw.textbbox((0, 0), band_text, font=font)
        text_w, text_h = box[2] - box[0], box[3] - box[1]
        margin = max(4, width // 80)
        x = margin if band_corner.endswith("left") else width - text_w - margin
        y = margin if band_corner.startswith("top") else height - text_h - margin * 2
        draw.text((x, y), band_text, fill=(255, 255, 255), font=font)
    return img


def fundus_jpeg(**kwargs) -> bytes:
    quality = kwargs.pop("quality", 90)
    exif = kwargs.pop("exif", None)
    out = io.BytesIO()
    save = {"quality": quality}
    if exif is not None:
        save["exif"] = exif
    fundus_image(**kwargs).save(out, "JPEG", **save)
    return out.getvalue()


# --- Reports --------------------------------------------------------------------------------------------------------

RESULT_STRINGS = {
    "dr-": "No signs of DR detected",
    "dr+": "Signs of DR detected",
    "dr_amd-": "No signs of DR or AMD detected",
    "dr_amd+": "Signs of DR or AMD detected",
    "amd-": "No signs of AMD detected",
    "amd+": "Signs of AMD detected",
    "glaucoma-": "No Referable Glaucoma - Routine screening advised",
    "glaucoma+": "Referable Glaucoma - Referral suggested",
    "glaucoma++": "Referable Glaucoma - Refer immediately",
}


@dataclass
class ReportSpec:
    """A Medios AI report: ``dr`` one of the DR-family keys of RESULT_STRINGS (or None), ``glaucoma`` likewise."""

    dr: str | None = "dr-"
    glaucoma: str | None = "glaucoma-"
    vcdr: tuple[str, str] = ("0.45", "0.52")
    name: str = "Test Patient"
    patient_id: str = "MRN0001"
    age: int | None = 54
    sex: str = "Male"
    date: str = "01-02-2024"
    version: str = "2.3.1"
    # Overrides of the exact strings (case and spacing variants, misspellings).
    dr_text: str | None = None
    glaucoma_text: str | None = None

    def pages(self) -> list[list[str]]:
        header = [f"Name: {self.name}", f"Patient ID: {self.patient_id}"]
        if self.age is not None:
            header.append(f"Age: {self.age} Years    Sex: {self.sex}")
        header.append(f"Date: {self.date}")
        pages = []
        if self.dr:
            pages.append(
                [
                    f"Medios AI v{self.version}",
                    "Diabetic Retinopathy Report",
                    *header,
                    "",
                    f"Result DR: {self.dr_text or RESULT_STRINGS[self.dr]}",
                    "",
                    "Notes: automated offline screening on the device.",
                    "Please consult an ophthalmologist for a full examination.",
                ]
            )
        if self.glaucoma:
            pages.append(
                [
                    f"Medios AI v{self.version}",
                    "Glaucoma Screening Report",
                    *header,
                    "",
                    "SCREENING RESULT",
                    f"Right Eye    VCDR - {self.vcdr[0]}",
                    f"Left Eye     VCDR - {self.vcdr[1]}",
                    self.glaucoma_text or RESULT_STRINGS[self.glaucoma],
                ]
            )
        return pages


def raster_page(lines: list[str], *, dpi: int = 150, font_px: int | None = None) -> Image.Image:
    """A page of text drawn as pixels (A4 at ``dpi``), as the phones produce them."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    font = ImageFont.load_default(size=font_px or int(dpi * 0.19))
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y = int(dpi * 0.8)
    for line in lines:
        draw.text((int(dpi * 0.8), y), line, fill=0, font=font)
        y += int(font.size * 1.7)
    return page


def raster_pdf(pages: list[list[str]], *, dpi: int = 150, font_px: int | None = None) -> bytes:
    """Every page one greyscale image, no fonts: the text can only be read by OCR."""
    images = [raster_page(lines, dpi=dpi, font_px=font_px) for lines in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return out.getvalue()


_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _pdf_escape(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(pages: list, *, password: str | None = None) -> bytes:
    """A PDF with a real text layer (Helvetica); a page given as a PIL image is drawn as a picture instead (a mixed
    report). With ``password``, encrypted (RC4 40-bit, revision 2) so that it cannot be opened without it."""
    file_id = hashlib.md5(repr(pages).encode()).digest()  # noqa: S324 - a document id, not security
    key = None
    encrypt_dict = b""
    if password is not None:
        permissions = -4
        owner_key = hashlib.md5((b"owner-" + password.encode() + _PAD)[:32]).digest()[:5]  # noqa: S324
        user_padded = (password.encode() + _PAD)[:32]
        o_value = _rc4(owner_key, user_padded)
        key = hashlib.md5(user_padded + o_value + struct.pack("<i", permissions) + file_id).digest()[:5]  # noqa: S324
        u_value = _rc4(key, _PAD)
        encrypt_dict = (
            b"<< /Filter /Standard /V 1 /R 2 /Length 40 /O <" + o_value.hex().encode() + b"> /U <"
            + u_value.hex().encode() + b"> /P " + str(permissions).encode() + b" >>"
        )  # fmt: skip

    def obj_key(number: int) -> bytes:
        return hashlib.md5(key + struct.pack("<i", number)[:3] + b"\x00\x00").digest()[:10]  # noqa: S324

    objects: list[bytes] = []  # object n is objects[n-1]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"")  # pages, filled below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for lines in pages:
        page_number = len(objects) + 1
        content_number = page_number + 1
        resources = b"/Font << /F1 3 0 R >>"
        extra = []
        if isinstance(lines, Image.Image):  # a rasterised page: one JPEG drawn over the whole page
            picture = io.BytesIO()
            lines.convert("L").save(picture, "JPEG", quality=85)
            jpeg = picture.getvalue()
            image_number = page_number + 2
            resources = b"/XObject << /Im1 " + str(image_number).encode() + b" 0 R >>"
            stream = b"q 595 0 0 842 0 0 cm /Im1 Do Q"
            extra.append(
                b"<< /Type /XObject /Subtype /Image /Width " + str(lines.width).encode() + b" /Height "
                + str(lines.height).encode() + b" /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode"
                b" /Length " + str(len(jpeg)).encode() + b" >>\nstream\n" + jpeg + b"\nendstream"
            )  # fmt: skip
        else:
            stream = bytearray(b"BT /F1 12 Tf 14 TL 60 780 Td\n")
            for line in lines:
                stream += b"(" + _pdf_escape(line) + b") Tj T*\n"
            stream += b"ET"
        data = bytes(stream)
        if key is not None:
            data = _rc4(obj_key(content_number), data)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << " + resources + b" >> "
            b"/Contents " + str(content_number).encode() + b" 0 R >>"
        )
        objects.append(b"<< /Length " + str(len(data)).encode() + b" >>\nstream\n" + data + b"\nendstream")
        objects.extend(extra)
        kids.append(page_number)
    objects[1] = (
        b"<< /Type /Pages /Kids [" + b" ".join(f"{k} 0 R".encode() for k in kids) + b"] /Count "
        + str(len(kids)).encode() + b" >>"
    )  # fmt: skip
    if key is not None:
        objects.append(encrypt_dict)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /ID [<{file_id.hex()}> <{file_id.hex()}>]"
    if key is not None:
        trailer += f" /Encrypt {len(objects)} 0 R"
    out += trailer.encode() + f" >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def report_pdf(spec: ReportSpec | None = None, *, rasterised: bool = True, password: str | None = None) -> bytes:
    spec = spec or ReportSpec()
    if rasterised and password is None:
        return raster_pdf(spec.pages())
    return text_pdf(spec.pages(), password=password)


def corrupt_pdf() -> bytes:
    good = text_pdf(ReportSpec().pages())
    return good[:40] + np.random.default_rng(7).bytes(200) + b"\n%%EOF\n"


# --- Archives -------------------------------------------------------------------------------------------------------


def capture_name(hour: int, minute: int, second: int = 0, millis: int = 0, ext: str = "jpg") -> str:
    """Remidio's 12-hour file name; the noon hour is written 0 (12:05 PM -> ``0.05.00.000_PM``)."""
    suffix = "PM" if hour >= 12 else "AM"
    shown = hour % 12 if hour != 0 else 0
    return f"{shown}.{minute:02d}.{second:02d}.{millis:03d}_{suffix}.{ext}"


@dataclass
class EncounterSpec:
    name: str = "Test Patient"
    patient_id: str = "MRN0001"
    date: dt.date = dt.date(2024, 2, 1)
    images: list[dict] = field(default_factory=lambda: [{"disc_side": "right"}, {"disc_side": "left"}])
    reports: list[dict] = field(default_factory=lambda: [{}])  # kwargs of report_pdf, plus "name"
    flat: bool = False  # images directly in the patient folder (PRISTINE camera), no FOP/
    seed: int = 0

    @property
    def folder(self) -> str:
        return f"{self.name.replace(' ', '_')}_{self.patient_id}_{self.date:%d-%m-%Y}"

    def entries(self) -> list[tuple[str, bytes]]:
        out = []
        for index, image in enumerate(self.images):
            image = dict(image)
            name = image.pop("name", None) or capture_name(10 + index // 60, index % 60, 16, 99)
            image.setdefault("seed", self.seed * 100 + index)
            data = image.pop("data", None) or fundus_jpeg(**image)
            out.append((f"{self.folder}/{name}" if self.flat else f"{self.folder}/FOP/{name}", data))
        for index, report in enumerate(self.reports):
            report = dict(report)
            name = report.pop("name", None) or capture_name(11, index, 30, 5, ext="pdf")
            data = report.pop("data", None)
            if data is None:
                spec = report.pop("spec", None) or ReportSpec(name=self.name, patient_id=self.patient_id)
                data = report_pdf(spec, **report)
            out.append((f"{self.folder}/REPORTS/{name}", data))
        return out


def export_zip(
    encounters: list[EncounterSpec], *, junk: bool = False, extra: list[tuple[str, bytes]] | None = None, wrapper=None
) -> bytes:
    """A Remidio export with these encounters (``junk``: macOS and Windows leftovers; ``wrapper``: a top folder)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for encounter in encounters:
            zf.writestr(f"{encounter.folder}/", b"")
            for name, data in encounter.entries():
                zf.writestr(f"{wrapper}/{name}" if wrapper else name, data)
        if junk:
            folder = encounters[0].folder if encounters else "x"
            zf.writestr("__MACOSX/._" + folder, b"\x00\x05\x16\x07" + b"\x00" * 60)
            zf.writestr(f"{folder}/.DS_Store", b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
            zf.writestr(f"{folder}/FOP/._1.00.00.000_AM.jpg", b"\x00\x05\x16\x07" + b"\x00" * 60)
            zf.writestr(f"{folder}/FOP/Thumbs.db", b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
        for name, data in extra or []:
            zf.writestr(name, data)
    return out.getvalue()


# --- Raw ZIP writer for hostile archives ----------------------------------------------------------------------------


@dataclass
class RawEntry:
    name: str
    data: bytes
    compress: bool = True
    flags: int = 0
    external_attr: int = 0o100644 << 16
    create_system: int = 3
    declared_size: int | None = None  # lie about the uncompressed size
    encrypt_with: bytes | None = None  # ZipCrypto password
    method: int | None = None


def _zipcrypto(password: bytes, data: bytes, crc: int) -> bytes:
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_step(value: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc_step(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_step(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    header = bytearray(os.urandom(11)) + bytes([crc >> 24 & 0xFF])
    out = bytearray()
    for byte in bytes(header) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ ((temp * (temp ^ 1)) >> 8) & 0xFF)
        update(byte)
    return bytes(out)


def raw_zip(entries: list[RawEntry], *, comment: bytes = b"") -> bytes:
    out = bytearray()
    central = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-8")
        crc = zlib.crc32(entry.data) & 0xFFFFFFFF
        if entry.compress:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = compressor.compress(entry.data) + compressor.flush()
            method = 8
        else:
            payload, method = entry.data, 0
        flags = entry.flags | 0x800
        if entry.encrypt_with is not None:
            payload = _zipcrypto(entry.encrypt_with, payload, crc)
            flags |= 0x1
        method = entry.method if entry.method is not None else method
        size = entry.declared_size if entry.declared_size is not None else len(entry.data)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, len(payload), size, len(name), 0)
        out += name + payload
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (entry.create_system << 8) | 20,
            20,
            flags,
            method,
            0,
            0x21,
            crc,
            len(payload),
            size,
            len(name),
            0,
            0,
            0,
            0,
            entry.external_attr,
            offset,
        )
        central += name
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, len(comment))
    out += comment
    return bytes(out)


def good_encounter_entries(seed: int = 0, patient_id: str = "MRN0001") -> list[tuple[str, bytes]]:
    return EncounterSpec(patient_id=patient_id, seed=seed, reports=[{"rasterised": False}]).entries()


def hostile(kind: str) -> bytes:
    """Every hostile archive of REMIDIO.md, each with a good encounter beside the bad entry."""
    good = [RawEntry(name, data) for name, data in good_encounter_entries(seed=900)]
    folder = EncounterSpec().folder
    if kind == "traversal":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/../../../evil.jpg", fundus_jpeg(seed=1))])
    if kind == "traversal_backslash":
        return raw_zip([*good, RawEntry(f"{folder}\\..\\..\\evil.jpg", fundus_jpeg(seed=1))])
    if kind == "absolute":
        return raw_zip([*good, RawEntry("/tmp/evil.jpg", fundus_jpeg(seed=1))])
    if kind == "absolute_drive":
        return raw_zip([*good, RawEntry("C:/Windows/evil.jpg", fundus_jpeg(seed=1))])
    if kind == "symlink":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/link.jpg", b"/etc/passwd", external_attr=0o120777 << 16)])
    if kind == "encrypted":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/secret.jpg", fundus_jpeg(seed=2), encrypt_with=b"secret")])
    if kind == "nested":
        inner = export_zip([EncounterSpec(patient_id="INNER1", seed=5)])
        return raw_zip([*good, RawEntry(f"{folder}/inner.zip", inner, compress=False)])
    if kind == "nested_disguised":
        inner = export_zip([EncounterSpec(patient_id="INNER2", seed=6)])
        return raw_zip([*good, RawEntry(f"{folder}/FOP/2.00.00.000_PM.jpg", inner, compress=False)])
    if kind == "mismatch":
        return raw_zip(
            [
                *good,
                RawEntry(f"{folder}/FOP/3.00.00.000_PM.jpg", b"MZ\x90\x00" + np.random.default_rng(3).bytes(2000)),
                RawEntry(f"{folder}/REPORTS/3.00.00.000_PM.pdf", fundus_jpeg(seed=3)),
            ]
        )
    if kind == "corrupt":
        data = bytearray(raw_zip(good))
        start = data.rfind(b"PK\x01\x02")
        data[start : start + 4] = b"XXXX"
        return bytes(data)
    if kind == "truncated":
        data = raw_zip(good)
        return data[: len(data) // 2]
    if kind == "crc":
        data = bytearray(raw_zip([RawEntry(name, content, compress=False) for name, content in good_encounter_entries(901)]))
        data[200] ^= 0xFF  # inside the first entry's stored bytes
        return bytes(data)
    if kind == "size_lie":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/4.00.00.000_PM.jpg", fundus_jpeg(seed=4), declared_size=100)])
    if kind == "bomb_ratio":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/5.00.00.000_PM.jpg", b"\xff\xd8\xff" + bytes(20 * 1024 * 1024))])
    if kind == "bomb_size":
        return raw_zip([*good, *(RawEntry(f"{folder}/FOP/6.{i:02d}.00.000_PM.jpg", np.random.default_rng(i).bytes(300_000), compress=False) for i in range(8))])  # fmt: skip
    if kind == "bomb_entries":
        return raw_zip([*good, *(RawEntry(f"{folder}/note-{i}.txt", b"x", compress=False) for i in range(300))])
    if kind == "unsupported_method":
        return raw_zip([*good, RawEntry(f"{folder}/FOP/7.00.00.000_PM.jpg", fundus_jpeg(seed=7), compress=False, method=99)])
    raise ValueError(kind)


HOSTILE_KINDS = (
    "traversal",
    "traversal_backslash",
    "absolute",
    "absolute_drive",
    "symlink",
    "encrypted",
    "nested",
    "nested_disguised",
    "mismatch",
    "corrupt",
    "truncated",
    "crc",
    "size_lie",
    "bomb_ratio",
    "bomb_size",
    "bomb_entries",
    "unsupported_method",
)
