"""The image page's encounter section for ZIP-ingested photographs: pseudonym, visit, eye, and the Medios AI result.

Graders see the pseudonym and the eye but not the AI answer, so their grading stays independent of it; people who
upload or verify see the AI answer too. Never any identifier. Two queries, only for images that came from a ZIP.
"""

from accounts import access
from remedio import selectors
from remedio.models import Encounter, EncounterImage


def ai_result_visible(user) -> bool:
    return access.can(user, "verify_encounters") or not access.can(user, "grade")


def encounter_panel(image, user) -> dict | None:
    if image.source != "zip":
        return None
    link = selectors.image_link(image)
    if link is None:
        return None
    encounter: Encounter = link.encounter
    show_ai = ai_result_visible(user)
    results = selectors.current_ai_results([encounter.pk]).get(encounter.pk, []) if show_ai else []
    return {
        "title": "Encounter",
        "template": "remedio/_image_panel.html",
        "context": {
            "link": link,
            "encounter": encounter,
            "show_ai": show_ai,
            "ai_results": results,
            "can_verify": access.can(user, "verify_encounters"),
        },
    }


def companions(image, user) -> list:
    """The other eye of the same visit, for the grading page: a verified, gradable photograph of the opposite eye
    (the same field first), only if the user may see it. No identifier is involved."""
    if image.source != "zip":
        return []
    from uploads.selectors import images_visible_to

    link = EncounterImage.objects.filter(image_id=image.pk).values("encounter_id", "laterality", "field").first()
    if link is None or not link["laterality"]:
        return []
    others = (
        images_visible_to(user)
        .filter(
            encounter_link__encounter_id=link["encounter_id"],
            encounter_link__encounter__status=Encounter.Status.VERIFIED,
            encounter_link__gradable=True,
        )
        .exclude(encounter_link__laterality=link["laterality"])
        .exclude(encounter_link__laterality="")
        .select_related("area")
        .order_by("encounter_link__position")
    )
    candidates = list(others[:10])
    fields = dict(
        EncounterImage.objects.filter(image_id__in=[c.pk for c in candidates]).values_list("image_id", "field")
    )
    candidates.sort(key=lambda other: fields.get(other.pk) != link["field"])
    return candidates[:1]
