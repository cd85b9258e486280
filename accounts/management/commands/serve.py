import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve the application with a background Celery worker and its scheduler until Ctrl-C (or SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--concurrency", default=os.environ.get("WORKER_CONCURRENCY", "2"))

    def _celery(self, *args: str) -> subprocess.Popen:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")}
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", *args], env=env)

    def handle(self, *args, port, host, concurrency, **options):
        # The scheduler (which runs the stale-item reaper) is its own process rather than embedded in the worker
        # (``worker --beat``): an embedded one can keep the worker from ever finishing its warm shutdown.
        worker = self._celery("worker", "--loglevel", "WARNING", "--concurrency", str(concurrency))
        beat = self._celery("beat", "--loglevel", "WARNING", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME)
        # SIGTERM (docker stop, a supervisor) stops the children as Ctrl-C does, instead of orphaning them.
        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(
            self.style.SUCCESS(
                f"Background worker (pid {worker.pid}) and scheduler (pid {beat.pid}) started, data in {settings.DATA_DIR}"
            )
        )
        self.stdout.write(self.style.SUCCESS(f"Open http://{host}:{port}/ (Ctrl-C stops the server and the worker)"))
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            for child in (beat, worker):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in (beat, worker):
                try:
                    # A warm shutdown lets the worker finish (and acknowledge) the item it is on.
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
