"""The APIM policy fragment cannot run here (its C# expressions run inside APIM): it is checked
for what can be — well-formed XML, a one-way send to the ingest API with the token, every field
of the golden event set by its body expression — and the golden event (what the fragment sends
for the golden request; README: how it was checked in APIM's test console) passes Aforo's own
validator."""

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

FRAGMENT = HERE.parent / "aforo-metering.fragment.xml"
GOLDEN = sorted((HERE.parent / "golden").glob("*.json"))


def test_the_fragment_sends_one_way_to_the_ingest_api():
    root = ET.parse(FRAGMENT).getroot()
    assert root.tag == "fragment"
    send = root.find(".//send-one-way-request")
    assert send is not None and send.get("mode") == "new"
    assert send.findtext("set-url") == "{{aforo-url}}/api/v1/events" and send.findtext("set-method") == "POST"
    headers = {h.get("name"): h.findtext("value") for h in send.findall("set-header")}
    assert headers == {"Content-Type": "application/json", "Authorization": "Bearer {{aforo-ingest-token}}"}


@pytest.mark.parametrize("sample", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_the_golden_event_is_what_the_body_builds_and_aforo_accepts_it(sample):
    golden = json.loads(sample.read_text())
    body = ET.parse(FRAGMENT).getroot().find(".//set-body").text
    built = set(re.findall(r'JProperty\("([a-z_]+)"', body)) | set(re.findall(r'metadata\.Add\("([a-z_]+)"', body))
    event = golden["event"]
    assert set(event) - {"metadata"} <= built and set(event["metadata"]) <= built
    assert event["event_id"] == "apim-" + golden["request"]["RequestId"]
    assert event["metadata"]["latency_ms"] == int(golden["request"]["Elapsed.TotalMilliseconds"])
    now = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert validate_event(event, now=now).event_id == event["event_id"]
