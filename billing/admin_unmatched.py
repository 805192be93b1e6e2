"""Unmatched usage in the admin, with "Replay selected": metering shows the rows (read-only);
replaying them is rating, so the action is added here, above metering, on metering's admin."""

from __future__ import annotations

from django.contrib import admin, messages

from aforo.kafka import BrokerUnavailable
from catalog.admin import is_unscoped, operator_tenant
from metering.admin import UnmatchedUsageAdmin
from metering.models import UnmatchedUsage

from .services import rated_records_publish
from .usage import unmatched_usage_replay


class UnmatchedUsageReplayAdmin(UnmatchedUsageAdmin):
    actions = ["replay_selected"]

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("metering.change_unmatchedusage")

    @admin.action(description="Replay selected (rate what now matches the catalog)", permissions=["replay"])
    def replay_selected(self, request, queryset):
        # `queryset` is already confined to the operator's tenant; the tenant is passed too.
        tenant_id = None if is_unscoped(request) else operator_tenant(request).pk
        ids = list(queryset.filter(resolved_at__isnull=True).values_list("id", flat=True))
        counts, rated = unmatched_usage_replay(tenant_id=tenant_id, unmatched_ids=ids)
        message = (
            f"Replayed {len(ids)} unresolved row(s): "
            f"{counts['rated']} rated, {counts['still_unmatched']} still unmatched."
        )
        if rated:
            try:
                rated_records_publish(records=rated)
            except BrokerUnavailable as error:
                unpublished = f"The {len(rated)} rated record(s) are in the ledger but were not published: {error}"
                self.message_user(request, f"{message} {unpublished}", messages.WARNING)
                return
        self.message_user(request, message, messages.SUCCESS)


admin.site.unregister(UnmatchedUsage)
admin.site.register(UnmatchedUsage, UnmatchedUsageReplayAdmin)
