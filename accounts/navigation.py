"""Menu entries and start-page cards that feature apps add in ``AppConfig.ready`` (accounts knows no feature app)."""

from dataclasses import dataclass

from django.urls import reverse


@dataclass(frozen=True)
class Entry:
    section: str  # "upload" (Upload menu), "main" (top bar) or "home" (start-page card)
    label: str
    url_name: str
    action: str  # access action required to see it
    icon: str = "bi-circle"
    text: str = ""
    button: str = "Open"
    order: int = 100


_entries: list[Entry] = []


def register(entry: Entry) -> None:
    if entry not in _entries:
        _entries.append(entry)


def entries_for(user, section: str, can: dict) -> list[dict]:
    return [
        {
            "label": e.label,
            "url": reverse(e.url_name),
            "icon": e.icon,
            "title": e.label,
            "text": e.text,
            "action": e.button,
        }
        for e in sorted(_entries, key=lambda e: e.order)
        if e.section == section and can.get(e.action)
    ]
