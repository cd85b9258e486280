from common.tasks import idempotent_task
from jobs import services


@idempotent_task(name="jobs.run_item")
def run_item(*, item_id: int) -> None:
    services.item_run(item_id=item_id)


@idempotent_task(name="jobs.reap_stale_items")
def reap_stale_items() -> dict:
    return services.reap_stale_items()
