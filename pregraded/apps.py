from django.apps import AppConfig


class PregradedConfig(AppConfig):
    name = "pregraded"
    verbose_name = "Pre-graded uploads and grade import"

    def ready(self) -> None:
        from accounts import navigation, reference
        from jobs import registry
        from pregraded import handlers, panels, receivers, selectors
        from uploads import handlers as upload_handlers
        from uploads import panels as image_panels
        from uploads.signals import image_ready_for_grading

        registry.register(
            registry.Handler(
                kind=handlers.PREGRADED_UPLOAD,
                label="Pre-graded upload",
                process=upload_handlers.process_image_item,
                on_rejected=upload_handlers.image_item_rejected,
            )
        )
        registry.register(
            registry.Handler(
                kind=handlers.GRADE_IMPORT,
                label="Grade import",
                process=handlers.process_grade_import,
                on_rejected=handlers.grade_import_rejected,
            )
        )
        image_ready_for_grading.connect(receivers.image_ready, dispatch_uid="pregraded.image_ready")
        image_panels.register(panels.pregraded_panel, order=15)
        reference.register("ai_models", selectors.reference_ai_models)
        for entry in (
            navigation.Entry(
                "upload", "Pre-Graded Upload", "pregraded:upload", "upload_pregraded", "bi-cloud-arrow-up", order=30
            ),
            navigation.Entry("upload", "Pre-Graded Grades", "pregraded:grades", "import_grades", "bi-table", order=31),
            navigation.Entry("upload", "AI Models", "pregraded:ai-models", "import_grades", "bi-cpu", order=32),
            navigation.Entry(
                "home",
                "Pre-graded images",
                "pregraded:upload",
                "upload_pregraded",
                "bi-cloud-arrow-up",
                text="Upload images that were already graded elsewhere, then import their grades from a spreadsheet.",
                button="Upload pre-graded",
                order=40,
            ),
        ):
            navigation.register(entry)
