"""The grades section of the image page (registered with uploads.panels)."""

from grading import selectors


def grades_panel(image, user) -> dict | None:
    """Every grade of the image (history included), who gave it and when, and how consensus was reached.
    Blinding applies: while the image is being graded blind, a grader sees only their own grades. Four queries."""
    data = selectors.image_grades(image, user)
    tasks = selectors.image_tasks(image)
    if not data["schemes"] and not tasks:
        return None
    return {
        "title": "Grades",
        "template": "grading/_image_grades.html",
        # One key, so the template works however the page includes it.
        "context": {"grading": {**data, "tasks": tasks, "image": image}},
    }
