from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role
from accounts.services import user_provision


class Command(BaseCommand):
    help = "Create or update a user with roles and lab-unit assignments (for provisioning scripts)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", help="Set this password (kept unchanged for an existing user if omitted)")
        parser.add_argument("--role", action="append", dest="roles", default=[], choices=Role.values, required=True)
        parser.add_argument("--lab-unit", action="append", dest="lab_units", default=None, metavar="ID_OR_CODE")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, password, roles, lab_units, email, **options):
        try:
            user, created = user_provision(
                username=username, password=password, roles=roles, lab_units=lab_units, email=email
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        units = ", ".join(user.lab_units.values_list("code", flat=True)) or "none"
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.username}: roles {', '.join(roles)}; lab units {units}"))
