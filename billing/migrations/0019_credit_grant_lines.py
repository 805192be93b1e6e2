"""Invoice lines of kind credit_grant: a credit grant paying a postpaid invoice after tax."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0018_coupons'),
    ]

    operations = [
        migrations.AlterField(
            model_name='invoiceline',
            name='kind',
            field=models.CharField(choices=[('usage', 'Usage'), ('late_usage', 'Late Usage'), ('base', 'Base'), ('commitment', 'Commitment'), ('cap', 'Cap'), ('allowance', 'Allowance'), ('overage', 'Overage'), ('discount', 'Discount'), ('tax', 'Tax'), ('credit_grant', 'Credit Grant')], max_length=12),
        ),
    ]
