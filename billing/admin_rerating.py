"""Re-rating jobs and reversals in the operator admin: the jobs, newest first, each with its
report as a readable table and JSON (read-only) and its changed events as CSV
(/admin/rerating/<id>/events.csv: every corrected event of an applied job, read from the ledger;
a dry run's first 5,000 from its report), and "Re-rate a month" (/admin/rerating/start/): scope,
month, reason, dry run, checked by the service, then run as a Celery task."""

from __future__ import annotations

import csv
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from aforo.admin_pages import admin_page_register
from aforo.exceptions import ApiError
from billing.rating import text
from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin, is_unscoped, operator_tenant
from catalog.admin.confirm import confirmation_page, is_confirmed, operator_name
from catalog.models import Customer, RatePlan, Subscription

from .models import RatedEvent, RatingCorrection
from .rerating.report import report_table
from .rerating.services import rerating_job_create, rerating_job_start

CSV_COLUMNS = (
    "raw_event_id", "event_id", "customer_id", "metric", "dimension_key", "period_start", "quantity", "old_amount",
    "new_amount", "difference", "removed", "invoice",
)


@admin.register(RatingCorrection)
class RatingCorrectionAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    list_display = ("id", "kind", "scope", "period", "dry_run", "status", "summary", "requested_by", "created_at")
    list_filter = ("kind", "status", "dry_run")
    ordering = ("-id",)
    fields = (
        "kind", "scope", "period", "raw_event_id", "reason", "dry_run", "settled", "status", "summary", "csv_link",
        "report_table_text", "report_text", "error", "requested_by", "created_at", "started_at", "finished_at",
    )
    readonly_fields = fields

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": format_html(
            'Re-rating jobs and reversals · <a href="{}">Re-rate a month</a>', reverse("admin:rerating_start")
        )}
        return super().changelist_view(request, extra_context)

    @admin.display(description="scope")
    def scope(self, job: RatingCorrection) -> str:
        if job.subscription_id and job.kind == RatingCorrection.Kind.REVERSAL:
            return f"raw event {job.raw_event_id} (subscription {job.subscription_id})"
        if job.subscription_id:
            return f"subscription {job.subscription_id}"
        if job.customer_id:
            return f"customer {job.customer_id}"
        return f"rate plan {job.rate_plan_id}"

    @admin.display(description="difference")
    def summary(self, job: RatingCorrection) -> str:
        report = job.report or {}
        if "total" not in report:
            return "—"
        return f"{report['changed']} of {report['events']} events, {report['total']['difference']} {report.get('currency') or ''}".strip()

    @admin.display(description="changed events")
    def csv_link(self, job: RatingCorrection) -> str:
        if not (job.report or {}).get("changed"):
            return "—"
        return format_html('<a href="{}">Download CSV</a>', reverse("admin:rerating_events_csv", args=[job.pk]))

    @admin.display(description="report")
    def report_table_text(self, job: RatingCorrection) -> str:
        return format_html("<pre>{}</pre>", report_table(job.report)) if "total" in (job.report or {}) else "—"

    @admin.display(description="report (JSON)")
    def report_text(self, job: RatingCorrection) -> str:
        return format_html("<pre>{}</pre>", json.dumps(job.report or {}, indent=2, sort_keys=True))


def _job_for(request: HttpRequest, job_id: int) -> RatingCorrection:
    jobs = RatingCorrection.objects.all()
    if not is_unscoped(request):
        tenant = operator_tenant(request)
        if tenant is None:
            raise PermissionDenied("Your staff user belongs to no tenant.")
        jobs = jobs.filter(tenant=tenant)
    job = jobs.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such re-rating job.")
    return job


def _ledger_rows(job: RatingCorrection):
    """An applied job's corrections from the ledger: per raw event, its reversal and new rating."""
    rows = {}
    for rated in (
        RatedEvent.objects.filter(correction=job).select_related("raw_event", "metric").order_by("id").iterator(chunk_size=2000)
    ):
        entry = rows.setdefault(rated.raw_event_id, {"rated": rated, "old": None, "new": None})
        entry["old" if rated.reverses_id else "new"] = rated
    for raw_event_id, entry in rows.items():
        old, new, rated = entry["old"], entry["new"], entry["rated"]
        was = -old.amount if old is not None else 0
        now = new.amount if new is not None else 0
        yield [
            raw_event_id, rated.raw_event.event_id, rated.customer_id, rated.metric.code, rated.dimension_key,
            rated.period_start.isoformat(), text(abs(rated.quantity)), text(was), text(now), text(now - was),
            new is None, "",
        ]


def rerating_events_csv(request: HttpRequest, job_id: int) -> HttpResponse:
    if not request.user.has_perm("billing.view_ratingcorrection"):
        raise PermissionDenied("Needs the view permission on re-rating jobs.")
    job = _job_for(request, job_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rerating-{job.pk}-events.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    applied = job.status == RatingCorrection.Status.SUCCEEDED and not job.dry_run and (job.report or {}).get("written")
    if applied:
        writer.writerows(_ledger_rows(job))
    else:
        for event in (job.report or {}).get("event_changes", []):
            writer.writerow([event.get(column, "") if event.get(column) is not None else "" for column in CSV_COLUMNS])
    return response


class RerateStartForm(forms.Form):
    subscription = forms.IntegerField(required=False, min_value=1, help_text="One scope: a subscription id…")
    customer = forms.IntegerField(required=False, min_value=1, help_text="…or a customer id (each of its subscriptions)…")
    rate_plan = forms.IntegerField(required=False, min_value=1, help_text="…or a rate plan id (each of its subscriptions).")
    period = forms.CharField(max_length=7, help_text="YYYY-MM: the billing periods that start in this month.")
    reason = forms.CharField(max_length=300, help_text="Recorded with every correction.")
    dry_run = forms.BooleanField(required=False, initial=True, help_text="Report the difference; write nothing.")


def rerating_start_page(request: HttpRequest):
    if not request.user.has_perm("billing.add_ratingcorrection"):
        raise PermissionDenied("Starting a re-rating needs the add permission on re-rating jobs.")
    model_admin = admin.site._registry[RatingCorrection]
    form = RerateStartForm(request.POST if is_confirmed(request) else None)
    if is_confirmed(request) and form.is_valid():
        data = form.cleaned_data
        scope = [(m, data[f]) for m, f in ((Subscription, "subscription"), (Customer, "customer"), (RatePlan, "rate_plan")) if data[f]]
        if is_unscoped(request):
            tenant_id = scope[0][0].objects.filter(pk=scope[0][1]).values_list("tenant_id", flat=True).first() if scope else None
        else:
            tenant = operator_tenant(request)
            if tenant is None:
                raise PermissionDenied("Your staff user belongs to no tenant.")
            tenant_id = tenant.pk
        try:
            job = rerating_job_create(
                tenant_id=tenant_id or 0, period=data["period"], reason=data["reason"], subscription_id=data["subscription"],
                customer_id=data["customer"], rate_plan_id=data["rate_plan"], dry_run=data["dry_run"],
                requested_by=operator_name(request),
            )
        except ApiError as refused:
            field = next(iter(refused.context.get("fields") or {}), None)
            form.add_error(field if field in form.fields else None, refused.message)
        else:
            rerating_job_start(job=job)
            model_admin.message_user(request, f"Re-rating job {job.pk} started.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:billing_ratingcorrection_change", args=[job.pk]))
    return confirmation_page(
        model_admin, request, title="Re-rate a month", confirm_label="Start", form=form,
        cancel_url=reverse("admin:billing_ratingcorrection_changelist"),
        intro="Every event of the scope's periods that start in the month is priced again with the catalog as it is now, "
        "in its original order. A dry run reports the difference per event, invoice line and customer and writes nothing.",
        consequences=(
            "Each changed event gets a reversal of its old rating and a new rating, both linked to the job and its reason.",
            "Running totals and prepaid wallets move by exactly the difference; a settled period's difference is "
            "billed on the subscription's next invoice as adjustment lines.",
            "A second run with nothing to change writes nothing.",
        ),
    )


admin_page_register(route="rerating/start/", view=rerating_start_page, name="rerating_start")
admin_page_register(route="rerating/<int:job_id>/events.csv", view=rerating_events_csv, name="rerating_events_csv")
