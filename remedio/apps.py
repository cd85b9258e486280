from django.apps import AppConfig


class RemedioConfig(AppConfig):
    name = "remedio"
    verbose_name = "Remidio ZIP ingestion"

    def ready(self) -> None:
        from accounts import navigation
        from grading import hooks as grading_hooks
        from jobs import registry
        from remedio import handlers, panels
        from uploads import panels as image_panels

        registry.register(
            registry.Handler(
                kind=handlers.ZIP_UPLOAD,
                label="Remidio ZIP upload",
                process=handlers.process_archive_item,
                on_rejected=handlers.archive_item_rejected,
            )
        )
        navigation.register(
            navigation.Entry(
                section="upload", label="ZIP Upload (Remidio)", url_name="remedio:upload", action="upload_zip", order=20
            )
        )
        navigation.register(
            navigation.Entry(
                section="main", label="Encounters", url_name="remedio:encounters", action="verify_encounters", order=30
            )
        )
        navigation.register(
            navigation.Entry(
                section="home",
                label="ZIP Upload",
                url_name="remedio:upload",
                action="upload_zip",
                icon="bi-file-earmark-zip",
                text="Upload Remidio (Remedio) camera exports: patient folders, photographs and Medios AI reports.",
                button="Upload ZIP files",
                order=20,
            )
        )
        navigation.register(
            navigation.Entry(
                section="home",
                label="Verify encounters",
                url_name="remedio:encounters",
                action="verify_encounters",
                icon="bi-clipboard-check",
                text="Check laterality, field, masks and report results of imported visits before they go to grading.",
                button="Open the list",
                order=30,
            )
        )
        image_panels.register(panels.encounter_panel, order=20)
        grading_hooks.register_companions(panels.companions)
