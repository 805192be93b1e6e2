"""The invoice lifecycle (draft → finalized → paid | void | uncollectible), due dates, payments,
write-offs and credit notes. Invoices issued before it were finalized when issued: they get
finalized_at = issued_at and a due date from their subscription's net terms."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0016_terms'),
        ('catalog', '0007_subscription_net_terms'),
    ]

    operations = [
        migrations.CreateModel(
            name='CreditNote',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.CharField(max_length=40)),
                ('currency', models.CharField(max_length=3)),
                ('amount', models.DecimalField(decimal_places=6, max_digits=24)),
                ('reason', models.CharField(max_length=300)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name='CreditNoteCounter',
            fields=[
                ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='+', serialize=False, to='catalog.tenant')),
                ('next_number', models.PositiveIntegerField(default=1)),
            ],
        ),
        migrations.AddField(
            model_name='invoice',
            name='due_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='finalize_after',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='finalized_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='paid_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='payment_reference',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='invoice',
            name='uncollectible_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='uncollectible_reason',
            field=models.CharField(blank=True, default='', max_length=300),
        ),
        migrations.AlterField(
            model_name='invoice',
            name='status',
            field=models.CharField(choices=[('draft', 'Draft'), ('finalized', 'Finalized'), ('paid', 'Paid'), ('void', 'Void'), ('uncollectible', 'Uncollectible')], default='finalized', max_length=16),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('status', 'draft')), fields=['finalize_after'], name='invoice_draft_finalize_after'),
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'paid'), _negated=True), models.Q(('paid_at__isnull', False), models.Q(('payment_reference', ''), _negated=True)), _connector='OR'), name='invoice_paid_has_payment'),
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'draft'), _negated=True), ('finalized_at__isnull', True), _connector='OR'), name='invoice_draft_not_finalized'),
        ),
        migrations.AddField(
            model_name='creditnote',
            name='customer',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='credit_notes', to='catalog.customer'),
        ),
        migrations.AddField(
            model_name='creditnote',
            name='invoice',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='credit_note', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='creditnote',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.tenant'),
        ),
        migrations.AddIndex(
            model_name='creditnote',
            index=models.Index(fields=['tenant', '-created_at'], name='credit_note_tenant_created'),
        ),
        migrations.AddConstraint(
            model_name='creditnote',
            constraint=models.UniqueConstraint(fields=('tenant', 'number'), name='credit_note_number_unique_per_tenant'),
        ),
        migrations.RunSQL(
            """
            UPDATE billing_invoice AS i
               SET finalized_at = i.issued_at, due_at = i.issued_at + make_interval(days => s.net_terms_days)
              FROM catalog_subscription AS s
             WHERE s.id = i.subscription_id AND i.finalized_at IS NULL
            """,
            migrations.RunSQL.noop,
        ),
    ]
