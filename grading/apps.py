from django.apps import AppConfig


class GradingConfig(AppConfig):
    name = "grading"
    verbose_name = "Grading"

    def ready(self) -> None:
        from accounts import navigation, reference
        from grading import panels, receivers, selectors
        from grading.quality import wiring as quality_wiring
        from uploads import panels as image_panels
        from uploads.signals import image_ready_for_grading

        image_ready_for_grading.connect(receivers.image_ready, dispatch_uid="grading.image_ready")
        reference.register("grade_schemes", selectors.reference_schemes)
        image_panels.register(panels.grades_panel, order=20)
        for entry in (
            navigation.Entry("main", "Grading queue", "grading:queue", "grade", "bi-ui-checks-grid", order=20),
            navigation.Entry(
                "main", "Discrepancies", "grading:discrepancies", "view_quality", "bi-exclamation-diamond", order=30
            ),
            navigation.Entry("main", "Progress", "grading:progress", "view_images", "bi-bar-chart", order=40),
            navigation.Entry(
                "home",
                "Grading queue",
                "grading:queue",
                "grade",
                "bi-ui-checks-grid",
                text="Grade the next image of your queues: independent, blinded grading with arbitration.",
                button="Start grading",
                order=20,
            ),
        ):
            navigation.register(entry)
        quality_wiring.connect()
