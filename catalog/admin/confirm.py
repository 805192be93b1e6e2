"""The confirmation step every destructive operator action shares (void and reissue, wallet
adjustments, API key revocation, subscription cancellation).

Contract: the first request of such an action only renders `admin/confirm_destructive.html`:
what is acted on, what will happen, and a form asking for the reason; nothing changes. Only a
POST carrying the confirm button (`CONFIRM`) and a valid reason acts, through one service call
per row; a POST without a reason renders the page again with the error on the reason field and
changes nothing. The reason is stored on the row itself by the service (void_reason,
WalletEntry.reason, revoked_reason, canceled_reason) and the admin's log records who acted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse

CONFIRM = "_confirm"
MAX_REASON = 500


class ReasonForm(forms.Form):
    """The reason an operator gives for a destructive action: required, stored on the row."""

    reason = forms.CharField(
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "A reason is required: it is stored with the change, for whoever reads it later."},
        help_text="Required. Stored on the document or ledger row, with your name in the admin's history.",
    )


def action_carry(request: HttpRequest) -> list[tuple[str, str]]:
    """The hidden fields that bring a list action and its selection back with the confirmation
    (without `index`, Django's changelist runs the action again on exactly these rows)."""
    carry = [("action", request.POST.get("action", ""))]
    carry += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
    return carry


def is_confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and CONFIRM in request.POST


def operator_name(request: HttpRequest) -> str:
    """Who acted, as stored on the row (`revoked_by`): the operator's login in the admin."""
    return f"admin:{request.user.get_username()}"


def confirmation_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, *, title: str, confirm_label: str, cancel_url: str,
    form: forms.Form | None = None, intro: str = "", subject_headers: Sequence[str] = (),
    subject_rows: Iterable[Sequence[object]] = (), consequences: Sequence[str] = (),
    carry: Sequence[tuple[str, object]] = (), original=None, form_action: str = "",
    back: tuple[str, str] | None = None,
) -> TemplateResponse:
    """The confirmation page of a destructive action (nothing is changed by rendering it)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "action_title": title,
        "opts": model_admin.model._meta,
        "original": original,
        "intro": intro,
        "subject_headers": list(subject_headers),
        "subject_rows": [list(row) for row in subject_rows],
        "consequences": list(consequences),
        "form": form,
        "carry": [(name, value) for name, value in carry],
        "confirm_name": CONFIRM,
        "confirm_label": confirm_label,
        "back_name": back[0] if back else "",
        "back_label": back[1] if back else "",
        "cancel_url": cancel_url,
        "form_action": form_action,
    }
    return TemplateResponse(request, "admin/confirm_destructive.html", context)
