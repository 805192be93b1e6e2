"""/admin/pricing/backtest/: the price backtest for an operator — a form (metric, candidate
config JSON, months, optional plan) and the answer of billing.backtest.pricing_backtest: the
table per customer and period, totals, winners and losers and a uPlot bar chart of the % change
histogram. A GET form (it reads only); scoped to the operator's tenant (a superuser picks any
tenant's metric, and the metric's tenant is the backtest's)."""

from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from aforo.admin_pages import admin_page_register
from catalog.admin import is_unscoped, operator_tenant
from catalog.models import Metric, RatePlan

from .api.backtest import BACKTEST_TIMEOUT_S
from .backtest import BacktestInputError, pricing_backtest

FORM_FIELDS = {"from": "start", "to": "end"}  # the service's field names -> this form's


class BacktestForm(forms.Form):
    metric = forms.ModelChoiceField(queryset=Metric.objects.none())
    plan = forms.ModelChoiceField(queryset=RatePlan.objects.none(), required=False, help_text="Empty: every plan.")
    config = forms.CharField(
        label="Candidate price (JSON)", widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text='A metric config, e.g. {"model": "graduated", "tiers": [{"up_to": "1000", "unit_amount": "0.01"}, '
        '{"up_to": null, "unit_amount": "0.008"}]}',
    )
    start = forms.CharField(label="From (YYYY-MM)", max_length=7, widget=forms.TextInput(attrs={"placeholder": "2026-01"}))
    end = forms.CharField(label="To (YYYY-MM)", max_length=7, widget=forms.TextInput(attrs={"placeholder": "2026-03"}))

    def __init__(self, *args, tenant_id: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        metrics, plans = Metric.objects.select_related("tenant"), RatePlan.objects.select_related("tenant")
        if tenant_id is not None:
            metrics, plans = metrics.filter(tenant_id=tenant_id), plans.filter(tenant_id=tenant_id)
        self.fields["metric"].queryset = metrics.order_by("tenant_id", "code")
        self.fields["plan"].queryset = plans.order_by("tenant_id", "code")
        if tenant_id is None:  # a superuser: say whose
            self.fields["metric"].label_from_instance = lambda m: f"{m.tenant.name}: {m.code}"
            self.fields["plan"].label_from_instance = lambda p: f"{p.tenant.name}: {p.name}"

    def clean_config(self):
        try:
            return json.loads(self.cleaned_data["config"])
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"not valid JSON: {error}") from None


def _answer(form: BacktestForm) -> dict | None:
    """The backtest of a valid form, or None with the service's error on the form's field."""
    data = form.cleaned_data
    metric, plan = data["metric"], data["plan"]
    if plan is not None and plan.tenant_id != metric.tenant_id:
        form.add_error("plan", "is not a plan of the metric's tenant")
        return None
    try:
        return pricing_backtest(
            tenant_id=metric.tenant_id, config=data["config"], metric=metric.code, plan=plan.pk if plan else None,
            start=data["start"], end=data["end"], timeout_s=BACKTEST_TIMEOUT_S,
        )
    except BacktestInputError as error:
        field = error.field.split(".")[0].split("[")[0]
        field = FORM_FIELDS.get(field, field)
        form.add_error(field if field in form.fields else None, f"{error.field}: {error.message}")
        return None


def _direction(difference: str) -> str:
    value = Decimal(difference)
    return "lower" if value < 0 else "higher" if value > 0 else ""


def backtest_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("billing.view_ratedevent"):
        raise PermissionDenied
    tenant_id = None
    if not is_unscoped(request):
        tenant = operator_tenant(request)
        if tenant is None:
            raise PermissionDenied("Your staff user belongs to no tenant.")
        tenant_id = tenant.pk
    submitted = "metric" in request.GET
    form = BacktestForm(request.GET if submitted else None, tenant_id=tenant_id)
    answer = None
    if submitted and form.is_valid():
        answer = _answer(form)
    context = {
        **admin.site.each_context(request),
        "title": "Price backtest",
        "form": form,
        "answer": answer,
        "histogram": answer["distribution"]["histogram"] if answer else None,
        "customers": [{**row, "direction": _direction(row["difference"])} for row in answer["customers"]] if answer else [],
    }
    return TemplateResponse(request, "admin/backtest.html", context)


admin_page_register(route="pricing/backtest/", view=backtest_page, name="pricing_backtest")
