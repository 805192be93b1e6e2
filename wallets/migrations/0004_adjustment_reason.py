"""Adjustments carry their reason in a column of its own (until now it was typed into
`reference`): existing adjustments get their reference as reason, then every adjustment must
have one."""

from django.db import migrations, models

COPY_REASONS = "UPDATE wallets_walletentry SET reason = reference WHERE kind = 'adjustment' AND reason = ''"
# An adjustment whose reference was empty (none could be: the service refused it) still needs one.
NO_REASON = "UPDATE wallets_walletentry SET reason = '(no reason recorded)' WHERE kind = 'adjustment' AND reason = ''"


class Migration(migrations.Migration):

    dependencies = [
        ('wallets', '0003_read_side_indexes'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='lowbalancealert',
            options={'verbose_name': 'low-balance alert'},
        ),
        migrations.AddField(
            model_name='walletentry',
            name='reason',
            field=models.CharField(blank=True, db_default='', default='', max_length=500),
        ),
        migrations.RunSQL(COPY_REASONS, migrations.RunSQL.noop),
        migrations.RunSQL(NO_REASON, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='walletentry',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind', 'adjustment'), _negated=True), models.Q(('reason', ''), _negated=True), _connector='OR'), name='wallet_entry_adjustment_has_reason'),
        ),
    ]
