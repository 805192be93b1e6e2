import json

from django.core.management.base import BaseCommand

from aforo.demo.seed import demo_seed


class Command(BaseCommand):
    help = (
        "Create (idempotently) the demo tenant, catalog, customers, keys, subscriptions and wallets, and back-fill "
        "three months of usage, rated and settled through the real pipelines."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the credentials and ids as one JSON object.")
        parser.add_argument("--no-history", action="store_true", help="Skip the back-filled usage and invoices.")

    def handle(self, *args, **options):
        demo = demo_seed(history=not options["no_history"])
        if options["json"]:
            self.stdout.write(json.dumps(demo, indent=2))
            return
        self.stdout.write(f"Demo tenant {demo['tenant']['slug']} (id {demo['tenant']['id']}) is ready.")
        self.stdout.write(f"  admin token:  {demo['admin_token']}")
        self.stdout.write(f"  ingest token: {demo['ingest_token']}")
        for customer in demo["customers"]:
            wallet = f"  wallet {customer['wallet_id']}" if customer["wallet_id"] else ""
            self.stdout.write(
                f"  {customer['name']:<10} id {customer['id']:<4} {customer['billing_mode']:<8} "
                f"key {customer['api_key']}  login {customer['login']['username']}/{customer['login']['password']}{wallet}"
            )
