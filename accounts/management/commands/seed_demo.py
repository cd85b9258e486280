from django.core.management.base import BaseCommand

from accounts.services import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = "Create (idempotently) demo hospitals, lab units, cameras and one user per role, and print them."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, password, quiet, **options):
        seeded = demo_seed(password=password)
        if quiet:
            return
        self.stdout.write(self.style.SUCCESS(f"Demo users (password for all: {password})"))
        for username, roles, units in seeded:
            self.stdout.write(f"  {username:<16} {', '.join(roles):<18} {', '.join(units)}")
