"""Replay runs in the operator admin: the runs, newest first, each with its report (read-only),
and "Start a replay" (a page at /admin/replays/start/ linked from the list): source, offset
range, limit and dry run, checked by the service, then run as a Celery task. A scoped operator's
runs replay their tenant's records only; a superuser's, every tenant's."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from aforo.admin_pages import admin_page_register
from aforo.exceptions import ApiError
from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin, is_unscoped, operator_tenant
from catalog.admin.confirm import confirmation_page, is_confirmed, operator_name

from .models import ReplayRun
from .replay.services import MAX_LIMIT, replay_run_create, replay_run_start


@admin.register(ReplayRun)
class ReplayRunAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    list_display = ("id", "source", "dry_run", "status", "progress", "summary", "requested_by", "created_at", "finished_at")
    list_filter = ("source", "status", "dry_run")
    ordering = ("-id",)
    fields = (
        "source", "dry_run", "status", "partition", "from_offset", "to_offset", "limit", "progress", "summary",
        "report_text", "error", "requested_by", "created_at", "started_at", "finished_at",
    )
    readonly_fields = fields

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": format_html(
            'Replay runs · <a href="{}">Start a replay</a>', reverse("admin:replay_start")
        )}
        return super().changelist_view(request, extra_context)

    @admin.display(description="outcome")
    def summary(self, run: ReplayRun) -> str:
        counts = (run.report or {}).get("counts") or {}
        return ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in counts.items()) or "—"

    @admin.display(description="report")
    def report_text(self, run: ReplayRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.report or {}, indent=2, sort_keys=True))


class ReplayStartForm(forms.Form):
    source = forms.ChoiceField(choices=ReplayRun.Source.choices)
    partition = forms.IntegerField(required=False, min_value=0, help_text="Offset range only: the usage topic's partition.")
    from_offset = forms.IntegerField(required=False, min_value=0, help_text="Offset range only: the first offset.")
    to_offset = forms.IntegerField(required=False, min_value=0, help_text="Offset range only: the last offset (inclusive).")
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, help_text="Read at most this many records.")
    dry_run = forms.BooleanField(required=False, initial=True, help_text="Report what would happen; replay nothing.")


def replay_start_page(request: HttpRequest):
    if not request.user.has_perm("billing.add_replayrun"):
        raise PermissionDenied("Starting a replay needs the add permission on replay runs.")
    if is_unscoped(request):
        tenant_id = None
    else:
        tenant = operator_tenant(request)
        if tenant is None:
            raise PermissionDenied("Your staff user belongs to no tenant.")
        tenant_id = tenant.pk
    model_admin = admin.site._registry[ReplayRun]
    form = ReplayStartForm(request.POST if is_confirmed(request) else None)
    if is_confirmed(request) and form.is_valid():
        try:
            run = replay_run_create(tenant_id=tenant_id, requested_by=operator_name(request), **form.cleaned_data)
        except ApiError as refused:
            field = next(iter(refused.context.get("fields") or {}), None)
            form.add_error(field if field in form.fields else None, refused.message)
        else:
            replay_run_start(run=run)
            model_admin.message_user(request, f"Replay run {run.pk} started.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:billing_replayrun_change", args=[run.pk]))
    return confirmation_page(
        model_admin, request, title="Start a replay", confirm_label="Start", form=form,
        cancel_url=reverse("admin:billing_replayrun_changelist"),
        intro="Dead letters and offset ranges are re-validated with the consumer's checks; valid records go back to the "
        "usage topic with their original bytes, and the raw ledger's event ids make duplicates no-ops.",
        consequences=(
            "A record replayed once is never replayed again (a dry run replays nothing).",
            "Unmatched usage is rated against the catalog as it is now.",
        ),
    )


admin_page_register(route="replays/start/", view=replay_start_page, name="replay_start")
