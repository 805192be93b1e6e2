# The admin's label: "rollover policies", not "rollover policys".

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0014_leases'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='rolloverpolicy',
            options={'verbose_name_plural': 'rollover policies'},
        ),
    ]
