import unicodedata

MAX_DISPLAY_NAME = 200
_JOINERS = {"\u200c", "\u200d"}


def display_filename(name: str | None) -> str:
    """A file name as sent, made safe to store and show: no directories, no control characters, bounded length.

    Unicode is kept (normalised to NFC); HTML is left to the templates' escaping. Never used as a storage name.
    """
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    # Control, format (bidirectional overrides that disguise extensions), private-use and unassigned characters go;
    # the zero-width joiners that some scripts and emoji sequences need stay.
    name = "".join(ch for ch in name if ch in _JOINERS or unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".") or "unnamed"
    if len(name) > MAX_DISPLAY_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_DISPLAY_NAME - len(ext) - 2] + "…." + ext
        else:
            name = name[: MAX_DISPLAY_NAME - 1] + "…"
    return name
