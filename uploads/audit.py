"""The audit trail: one function to record an event, used by this app and by others (through
``uploads.services.audit_record``), plus the request origin that every event carries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from common.http import client_ip, user_agent
from uploads.models import AuditEvent

Action = AuditEvent.Action


@dataclass(frozen=True)
class Origin:
    """Who acts and from where: the user, their IP address and user agent."""

    actor: object | None = None
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request) -> Origin:
        user = getattr(request, "user", None)
        return cls(
            actor=user if getattr(user, "is_authenticated", False) else None,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )


@dataclass
class Entry:
    """An event to record; ``record_many`` writes a list of them in one statement."""

    action: str
    object_type: str = ""
    object_id: str = ""
    lab_unit_id: int | None = None
    summary: str = ""
    details: dict = field(default_factory=dict)


def _event(entry: Entry, origin: Origin, at) -> AuditEvent:
    actor = origin.actor
    return AuditEvent(
        action=entry.action[:60],
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        created_at=at,
        ip=origin.ip or None,
        user_agent=(origin.user_agent or "")[:400],
        object_type=entry.object_type[:40],
        object_id=str(entry.object_id or "")[:64],
        lab_unit_id=entry.lab_unit_id,
        summary=(entry.summary or "")[:500],
        details=entry.details or {},
    )


def record(entry: Entry, origin: Origin) -> AuditEvent:
    event = _event(entry, origin, timezone.now())
    event.save()
    return event


def record_many(entries: Iterable[Entry], origin: Origin) -> list[AuditEvent]:
    at = timezone.now()
    return AuditEvent.objects.bulk_create([_event(entry, origin, at) for entry in entries])
