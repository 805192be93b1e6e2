"""Credit grants: promotional or paid credit in a wallet, consumed before the paid balance, with the draws that trace every part of it."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_settlement'),
        ('catalog', '0009_subscription_customer_may_change_plan'),
        ('wallets', '0004_adjustment_reason'),
    ]

    operations = [
        migrations.AlterField(
            model_name='walletentry',
            name='kind',
            field=models.CharField(choices=[('top_up', 'Top Up'), ('debit', 'Debit'), ('hold', 'Hold'), ('hold_commit', 'Hold Commit'), ('hold_release', 'Hold Release'), ('hold_expiry', 'Hold Expiry'), ('adjustment', 'Adjustment'), ('grant', 'Grant'), ('grant_expiry', 'Grant Expiry'), ('grant_void', 'Grant Void'), ('grant_use', 'Grant Use'), ('grant_return', 'Grant Return')], max_length=12),
        ),
        migrations.CreateModel(
            name='CreditGrant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('kind', models.CharField(choices=[('promotional', 'Promotional'), ('paid', 'Paid')], default='promotional', max_length=12)),
                ('amount', models.DecimalField(decimal_places=26, max_digits=64)),
                ('remaining', models.DecimalField(decimal_places=26, max_digits=64)),
                ('priority', models.PositiveSmallIntegerField(default=100, help_text='Lower is consumed first (0–1000).')),
                ('starts_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty: never expires.', null=True)),
                ('status', models.CharField(choices=[('active', 'Active'), ('consumed', 'Consumed'), ('expired', 'Expired'), ('voided', 'Voided')], default='active', max_length=10)),
                ('reason', models.CharField(blank=True, default='', max_length=500)),
                ('void_reason', models.CharField(blank=True, default='', max_length=500)),
                ('idempotency_key', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('resolved_at', models.DateTimeField(blank=True, help_text='When it expired or was voided.', null=True)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.tenant')),
                ('wallet', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='grants', to='wallets.wallet')),
            ],
        ),
        migrations.AddField(
            model_name='walletentry',
            name='grant',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='wallets.creditgrant'),
        ),
        migrations.CreateModel(
            name='CreditGrantDraw',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', models.DecimalField(decimal_places=26, max_digits=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('entry', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='grant_draws', to='wallets.walletentry')),
                ('grant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='draws', to='wallets.creditgrant')),
                ('invoice', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.invoice')),
                ('rated_event', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ratedevent')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.tenant')),
            ],
        ),
        migrations.AddIndex(
            model_name='creditgrant',
            index=models.Index(condition=models.Q(('status', 'active')), fields=['wallet'], name='credit_grant_active'),
        ),
        migrations.AddIndex(
            model_name='creditgrant',
            index=models.Index(condition=models.Q(('status', 'active')), fields=['expires_at'], name='credit_grant_active_expiry'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.UniqueConstraint(fields=('wallet', 'idempotency_key'), name='credit_grant_idempotency_key_unique'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='credit_grant_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('remaining__gte', 0), ('remaining__lte', models.F('amount'))), name='credit_grant_remaining_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('expires_at__isnull', True), ('expires_at__gt', models.F('starts_at')), _connector='OR'), name='credit_grant_expires_after_start'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('priority__lte', 1000)), name='credit_grant_priority_range'),
        ),
        migrations.AddIndex(
            model_name='creditgrantdraw',
            index=models.Index(fields=['grant', 'id'], name='credit_grant_draw_recent'),
        ),
        migrations.AddConstraint(
            model_name='creditgrantdraw',
            constraint=models.CheckConstraint(condition=models.Q(('amount', 0), _negated=True), name='credit_grant_draw_not_zero'),
        ),
    ]
