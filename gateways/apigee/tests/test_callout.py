"""The Apigee shared flow's JavaScript callout, run under Node with a test double of Apigee's
context for golden samples: the event it sends is exactly the expected one and passes Aforo's
own validator (metering.validation, the one the ingest API and the consumer use)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
from metering.validation import validate_event  # noqa: E402

SCRIPT = HERE.parent / "sharedflowbundle/resources/jsc/aforo-event.js"
GOLDEN = sorted((HERE / "golden").glob("*.json"))


def run(sample: Path) -> dict:
    out = subprocess.run(["node", str(HERE / "run_callout.mjs"), str(SCRIPT), str(sample)], capture_output=True, text=True,
                         check=True, timeout=30)
    return json.loads(out.stdout)


@pytest.mark.parametrize("sample", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_the_callout_sends_the_golden_event_and_aforo_accepts_it(sample):
    golden = json.loads(sample.read_text())
    result = run(sample)
    if golden["expected"] is None:
        assert result["sent"] == [] and result["skipped"] == "no API key on the request"
        return
    [sent] = result["sent"]
    assert sent["url"] == "https://billing.example.com/api/v1/events" and sent["method"] == "POST"
    assert sent["headers"] == {"Content-Type": "application/json", "Authorization": "Bearer aft_ingest_sample"}
    assert sent["body"] == golden["expected"] and json.loads(result["event_variable"]) == golden["expected"]
    received = datetime.fromisoformat(golden["expected"]["timestamp"].replace("Z", "+00:00"))
    event = validate_event(sent["body"], now=received)  # raises EventRejected with its code if not
    assert event.event_id == golden["expected"]["event_id"] and str(event.quantity) == "1"


def test_the_bundle_is_well_formed_and_names_its_parts():
    import xml.etree.ElementTree as ET

    bundle = HERE.parent / "sharedflowbundle"
    descriptor = ET.parse(bundle / "aforo-metering.xml").getroot()
    policies = {p.text for p in descriptor.iter("Policy")}
    assert policies == {p.stem for p in (bundle / "policies").glob("*.xml")}
    for path in bundle.rglob("*.xml"):
        ET.parse(path)
    steps = [s.text for s in ET.parse(bundle / "sharedflows/default.xml").getroot().iter("Name")]
    assert steps == ["KVM-AforoSettings", "JS-BuildAndSendAforoEvent"]
