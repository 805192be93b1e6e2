"""The rated ledger's (customer, id) index, on its own so that it can be weighed on its own: it
serves the admin's search of the rated events by customer (newest first, one range scan) and
costs the consumer's COPY an insert into one of as many leaf pages as there are active customers
per rated event. Without it, that search walks the tenant's (tenant, id) range filtering by
customer: quick for an active customer, up to the whole tenant's ledger for one with few events."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0010_read_side_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='ratedevent',
            index=models.Index(fields=['customer', 'id'], name='rated_event_customer_id'),
        ),
    ]
