from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Images and uploads"

    def ready(self) -> None:
        from jobs import registry
        from uploads import handlers, wiring

        wiring.ready()

        registry.register(
            registry.Handler(
                kind=handlers.DIRECT_UPLOAD,
                label="Direct upload",
                process=handlers.process_image_item,
                on_rejected=handlers.image_item_rejected,
            )
        )
