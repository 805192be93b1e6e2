"""The Mule 4 custom policy cannot run here (no Mule runtime): it is checked for what can be —
well-formed XML, the call passed on before metering (execute-next), the send in an <async> scope
that logs and continues on error, every field of the golden event built by its DataWeave — and the
golden event (what the policy sends for the golden request) passes Aforo's own validator."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from metering.validation import validate_event  # noqa: E402

TEMPLATE = HERE.parent / "src/main/mule/template.xml"
GOLDEN = sorted((HERE.parent / "golden").glob("*.json"))
NS = {"m": "http://www.mulesoft.org/schema/mule/core", "hp": "http://www.mulesoft.org/schema/mule/http-policy",
      "http": "http://www.mulesoft.org/schema/mule/http", "ee": "http://www.mulesoft.org/schema/mule/ee/core"}


def test_the_policy_meters_after_the_call_without_delaying_it():
    root = ET.parse(TEMPLATE).getroot()
    source = root.find(".//hp:source", NS)
    children = [child.tag.split("}")[1] for child in source]
    assert children.index("execute-next") < children.index("choose")
    async_scope = source.find(".//m:async", NS)
    request = async_scope.find(".//http:request", NS)
    assert request.get("method") == "POST" and request.get("url") == "{{{aforoUrl}}}/api/v1/events"
    assert async_scope.find(".//m:on-error-continue", NS) is not None


@pytest.mark.parametrize("sample", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_the_golden_event_is_what_the_dataweave_builds_and_aforo_accepts_it(sample):
    golden = json.loads(sample.read_text())
    script = ET.parse(TEMPLATE).getroot().find(".//ee:set-payload", NS).text
    built = set(re.findall(r"^\s*([a-z_]+):", script, flags=re.MULTILINE))
    event = golden["event"]
    assert set(event) <= built and set(event["metadata"]) <= built
    assert event["event_id"] == "mule-" + golden["request"]["correlationId"]
    now = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert validate_event(event, now=now).event_id == event["event_id"]
