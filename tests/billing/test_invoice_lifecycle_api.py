"""The invoice lifecycle through the API: finalize, mark-paid, mark-uncollectible, void — every
move allowed and refused with its stable code, idempotent retries, validation errors naming
their field, 404 for unknown and other tenants' invoices; what the invoice reads (due date,
overdue, payment status, 0 due once void, metric names, currency on lines); credit notes;
net terms on the subscription API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Invoice
from tests.billing.test_invoice_lifecycle import settle, terms
from tests.billing.test_settlement import rate
from tests.factories import priced_setup, tenant_token


@pytest.fixture
def setup(api_client):
    setup = priced_setup(rate="0.5")
    rate(setup, "a", "10")
    setup.invoice = settle(setup)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return setup


def post(api_client, invoice_id, action, body=None):
    return api_client.post(f"/api/v1/invoices/{invoice_id}/{action}", body or {}, format="json")


def error(response):
    return response.json()["error"]


@pytest.mark.django_db
def test_an_invoice_reads_its_due_date_payment_status_metric_names_and_currencies(setup, api_client):
    body = api_client.get(f"/api/v1/invoices/{setup.invoice.pk}").json()
    assert (body["status"], body["payment_status"], body["overdue"]) == ("finalized", "due", False)
    assert body["amount_due"] == body["original_amount_due"] == "5.00"
    assert body["due_at"] is not None and body["finalized_at"] is not None and body["credit_note"] is None
    usage = body["lines"][0]
    assert (usage["metric"], usage["metric_name"], usage["currency"]) == (
        setup.metric.code, setup.metric.name, setup.invoice.currency
    )
    Invoice.objects.filter(pk=setup.invoice.pk).update(due_at=timezone.now() - timedelta(days=1))
    listed = api_client.get("/api/v1/invoices").json()["results"][0]
    assert (listed["payment_status"], listed["overdue"]) == ("overdue", True)


@pytest.mark.django_db
def test_mark_paid_is_idempotent_and_a_second_reference_conflicts(setup, api_client):
    paid_at = (timezone.now() - timedelta(hours=3)).replace(microsecond=0)
    first = post(api_client, setup.invoice.pk, "mark-paid", {"reference": "TX-1", "paid_at": paid_at.isoformat()})
    assert first.status_code == 200, first.content
    assert (first.json()["status"], first.json()["payment_reference"], first.json()["payment_status"]) == (
        "paid", "TX-1", "paid"
    )
    again = post(api_client, setup.invoice.pk, "mark-paid", {"reference": "TX-1"})
    assert again.status_code == 200 and again.json() == first.json()  # the same state, nothing changed
    other = post(api_client, setup.invoice.pk, "mark-paid", {"reference": "TX-2"})
    assert other.status_code == 409 and error(other)["code"] == "invoice_already_paid"
    void = post(api_client, setup.invoice.pk, "void", {"reason": "x"})
    assert void.status_code == 409 and (error(void)["code"], error(void)["status"]) == ("invoice_paid", "paid")
    uncollectible = post(api_client, setup.invoice.pk, "mark-uncollectible", {"reason": "x"})
    assert uncollectible.status_code == 409 and error(uncollectible)["code"] == "invoice_paid"
    assert post(api_client, setup.invoice.pk, "finalize").status_code == 200  # finalized already: a no-op


@pytest.mark.django_db
def test_validation_errors_name_their_field(setup, api_client):
    cases = [
        ({}, "reference"), ({"reference": ""}, "reference"), ({"reference": "x" * 201}, "reference"),
        ({"reference": "bad\u0007ref"}, "reference"),
        ({"reference": "TX", "paid_at": "yesterday"}, "paid_at"),
        ({"reference": "TX", "paid_at": (timezone.now() + timedelta(hours=1)).isoformat()}, "paid_at"),
    ]
    for body, field in cases:
        response = post(api_client, setup.invoice.pk, "mark-paid", body)
        assert response.status_code == 400, (body, response.content)
        problem = error(response)
        assert problem["code"] == "validation_error"
        assert field in problem.get("fields", {}) or problem.get("field") == field, (body, problem)
    missing = post(api_client, setup.invoice.pk, "mark-uncollectible", {})
    assert missing.status_code == 400 and "reason" in error(missing)["fields"]
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "finalized"


@pytest.mark.django_db
def test_unknown_and_other_tenants_invoices_are_404(setup, api_client):
    other = priced_setup(rate="1")
    rate(other, "z", "1")
    theirs = settle(other)
    for invoice_id in (theirs.pk, 999999999):
        for action, body in (("finalize", {}), ("mark-paid", {"reference": "TX"}),
                             ("mark-uncollectible", {"reason": "x"})):
            response = post(api_client, invoice_id, action, body)
            assert response.status_code == 404 and error(response)["code"] == "not_found"
        for name in ("lines.csv", "events.csv"):
            response = api_client.get(f"/api/v1/invoices/{invoice_id}/{name}")
            assert response.status_code == 404 and error(response)["code"] == "not_found"
    assert Invoice.objects.get(pk=theirs.pk).status == "finalized"


@pytest.mark.django_db
def test_a_draft_is_finalized_on_demand_and_cannot_be_paid_before(api_client):
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=48, net_terms_days=0)
    rate(setup, "a", "2")
    draft = settle(setup)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    body = api_client.get(f"/api/v1/invoices/{draft.pk}").json()
    assert (body["status"], body["payment_status"], body["due_at"]) == ("draft", "draft", None)
    assert body["finalize_after"] is not None
    refused = post(api_client, draft.pk, "mark-paid", {"reference": "TX"})
    assert refused.status_code == 409 and error(refused)["code"] == "invoice_draft"
    finalized = post(api_client, draft.pk, "finalize")
    assert finalized.status_code == 200 and finalized.json()["status"] == "finalized"
    assert finalized.json()["due_at"] == finalized.json()["finalized_at"]  # net 0: due on issue
    assert post(api_client, draft.pk, "finalize").json() == api_client.get(f"/api/v1/invoices/{draft.pk}").json()


@pytest.mark.django_db
def test_uncollectible_then_paid_then_nothing_more(setup, api_client):
    written_off = post(api_client, setup.invoice.pk, "mark-uncollectible", {"reason": "no answer for 90 days"})
    assert written_off.status_code == 200 and written_off.json()["uncollectible_reason"] == "no answer for 90 days"
    assert post(api_client, setup.invoice.pk, "mark-uncollectible", {"reason": "no answer for 90 days"}).status_code == 200
    conflict = post(api_client, setup.invoice.pk, "mark-uncollectible", {"reason": "other"})
    assert conflict.status_code == 409 and error(conflict)["code"] == "invoice_already_uncollectible"
    late = post(api_client, setup.invoice.pk, "mark-paid", {"reference": "late"})
    assert late.status_code == 200 and late.json()["status"] == "paid"


@pytest.mark.django_db
def test_a_void_shows_zero_due_and_its_credit_note(setup, api_client):
    response = post(api_client, setup.invoice.pk, "void", {"reason": "wrong PO number"})
    assert response.status_code == 201
    old = api_client.get(f"/api/v1/invoices/{setup.invoice.pk}").json()
    assert (old["status"], old["payment_status"], old["amount_due"], old["original_amount_due"]) == (
        "void", "void", "0.00", "5.00"
    )
    note = old["credit_note"]
    assert note["number"].startswith("CN-") and (note["amount"], note["currency"]) == ("5.00", setup.invoice.currency)
    listed = api_client.get("/api/v1/credit-notes").json()["results"]
    assert [(n["number"], n["invoice"], n["amount"], n["reason"]) for n in listed] == [
        (note["number"], setup.invoice.pk, "5.00", "wrong PO number")
    ]
    assert api_client.get(f"/api/v1/credit-notes/{note['id']}").json()["invoice_number"] == setup.invoice.number
    for action, body in (("mark-paid", {"reference": "TX"}), ("mark-uncollectible", {"reason": "x"}), ("finalize", {})):
        refused = post(api_client, setup.invoice.pk, action, body)
        assert refused.status_code == 409 and error(refused)["code"] == "invoice_void"
    other = priced_setup(rate="1")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other.tenant)}")
    assert api_client.get("/api/v1/credit-notes").json()["results"] == []
    assert api_client.get(f"/api/v1/credit-notes/{note['id']}").status_code == 404


@pytest.mark.django_db
def test_net_terms_and_grace_through_the_subscription_api(setup, api_client):
    url = f"/api/v1/subscriptions/{setup.subscription.pk}"
    assert api_client.get(url).json()["net_terms_days"] == 30
    changed = api_client.patch(url, {"net_terms_days": 14, "invoice_grace_hours": 6}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["net_terms_days"], changed.json()["invoice_grace_hours"]) == (14, 6)
    for body, field in (({"net_terms_days": -1}, "net_terms_days"), ({"net_terms_days": 366}, "net_terms_days"),
                        ({"invoice_grace_hours": 721}, "invoice_grace_hours"), ({"net_terms_days": "x"}, "net_terms_days")):
        response = api_client.patch(url, body, format="json")
        assert response.status_code == 400 and field in error(response)["fields"], response.content


@pytest.mark.django_db
def test_the_list_filters_by_status_and_overdue(setup, api_client):
    rate(setup, "b", "1")
    other = priced_setup(tenant=setup.tenant, rate="1")
    rate(other, "c", "1")
    second = settle(other)
    Invoice.objects.filter(pk=second.pk).update(due_at=timezone.now() - timedelta(days=2))
    post(api_client, setup.invoice.pk, "mark-paid", {"reference": "TX"})

    def ids(query):
        response = api_client.get(f"/api/v1/invoices?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("status=paid") == [setup.invoice.pk]
    assert ids("overdue=true") == [second.pk]
    assert ids("overdue=false") == [setup.invoice.pk]
    for query, field in (("status=open", "status"), ("overdue=yes", "overdue")):
        response = api_client.get(f"/api/v1/invoices?{query}")
        assert response.status_code == 400 and error(response)["field"] == field


def invoice_in(status):
    """An invoice brought to `status` through the services."""
    from billing.invoices.services import invoice_mark_paid, invoice_mark_uncollectible
    from billing.invoicing import invoice_void_and_reissue

    setup = priced_setup(rate="1")
    if status == "draft":
        terms(setup, invoice_grace_hours=24)
    rate(setup, "a", "2")
    invoice = settle(setup)
    if status == "paid":
        invoice_mark_paid(invoice_id=invoice.pk, reference="TX-1")
    elif status == "uncollectible":
        invoice_mark_uncollectible(invoice_id=invoice.pk, reason="gone")
    elif status == "void":
        invoice_void_and_reissue(invoice=invoice, reason="r")
    assert Invoice.objects.get(pk=invoice.pk).status == status
    return setup, invoice


API_ACTIONS = {
    "finalize": ("finalize", {}), "pay": ("mark-paid", {"reference": "TX-1"}),
    "mark_uncollectible": ("mark-uncollectible", {"reason": "gone"}), "void": ("void", {"reason": "r"}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["draft", "finalized", "paid", "void", "uncollectible"])
@pytest.mark.parametrize("action", list(API_ACTIONS))
def test_every_status_and_action_through_the_api(api_client, status, action):
    """The API applies exactly the lifecycle's table: the move (its target status, a credit note
    for the void of an issued invoice), the retry that changes nothing, or the refusal's code."""
    from billing.invoices.lifecycle import InvoiceState, transition_plan
    from billing.models import CreditNote

    setup, invoice = invoice_in(status)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    notes_before = CreditNote.objects.count()
    plan = transition_plan(InvoiceState(status=status, payment_reference="TX-1", uncollectible_reason="gone"),
                           action=action, reference="TX-1", reason="gone")
    route, body = API_ACTIONS[action]
    response = post(api_client, invoice.pk, route, body)
    after = Invoice.objects.get(pk=invoice.pk)
    if plan.refused:
        assert response.status_code == 409 and error(response)["code"] == plan.refused, response.content
        assert after.status == status
    else:
        assert response.status_code in (200, 201), response.content
        assert after.status == (plan.to or status)
    assert CreditNote.objects.count() - notes_before == (1 if plan.credit_note else 0)
