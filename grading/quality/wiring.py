"""What the quality pages add to the rest of the product, connected from ``GradingConfig.ready``."""

from django.db.models.signals import post_save


def connect() -> None:
    from accounts import navigation
    from grading.models import Consensus, Grade, GradeOption, GradeScheme
    from grading.quality import cache
    from uploads.models import Image

    # An edit in place (an image moved to another lab unit, an option made referable) bumps the cache version.
    # Inserts and deletions of grades and consensus records, bulk ones included, change the data stamp instead, so
    # no delete receiver is needed (one would also stop Django from deleting an image's grades in one statement).
    for model in (Grade, Consensus, GradeOption, GradeScheme, Image):
        post_save.connect(cache.bump, sender=model, dispatch_uid=f"quality.bump.{model.__name__}")
    for entry in (
        navigation.Entry("main", "Quality", "grading:quality:agreement", "view_quality", "bi-graph-up", order=35),
        navigation.Entry(
            "home",
            "Quality",
            "grading:quality:agreement",
            "view_quality",
            "bi-graph-up",
            text="Agreement between graders, graders and AI models against the consensus, grader monitoring.",
            button="Open quality metrics",
            order=35,
        ),
    ):
        navigation.register(entry)
