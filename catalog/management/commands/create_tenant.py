import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from catalog.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant with an admin token (catalog API) and an ingest token (events API), shown once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", help="URL-safe identifier (default: from the name).")
        parser.add_argument("--json", action="store_true", help="Print the tenant id and tokens as one JSON object.")

    def handle(self, *args, name: str, slug: str | None, **options):
        try:
            tenant, admin_token, ingest_token = tenant_create(name=name, slug=slug or slugify(name))
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())) from None
        if options["json"]:
            self.stdout.write(json.dumps({"tenant_id": tenant.id, "slug": tenant.slug, "admin_token": admin_token, "ingest_token": ingest_token}))
            return
        self.stdout.write(f"Tenant {tenant.name} ({tenant.slug}, id {tenant.id}). These tokens are shown once:")
        self.stdout.write(f"  admin token:  {admin_token}")
        self.stdout.write(f"  ingest token: {ingest_token}")
