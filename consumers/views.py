"""/healthz/consumer[?name=usage]: the consumer group's health (consumers.health.consumer_status)
as JSON; 503 when records wait and nothing moves, or when the broker does not answer."""

from confluent_kafka import KafkaException
from django.conf import settings
from django.http import JsonResponse

from .health import consumer_status
from .registry import CONSUMERS


def consumer_health(request):
    name = request.GET.get("name", "usage")
    definition = CONSUMERS.get(name)
    if definition is None:
        return JsonResponse({"error": {"code": "not_found", "message": f"No consumer {name[:40]!r}."}}, status=404)
    try:
        status = consumer_status(
            name=name, group=definition.group_id(), topic=definition.topic(), stall_after_s=settings.CONSUMER_STALL_AFTER_S
        )
    except KafkaException as error:
        return JsonResponse({"consumer": name, "status": "unknown", "error": f"broker: {error}"}, status=503)
    return JsonResponse(status, status=503 if status["status"] == "stalled" else 200)
