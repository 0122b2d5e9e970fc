"""Writes events/redact-log/*.json: CloudWatch Logs subscription events as Lambda receives them
({"awslogs": {"data": base64(gzip(DATA_MESSAGE JSON))}}), built from the readable Bedrock
ModelInvocationLog records in functions/redact-log/tests/fixtures/. Deterministic (gzip mtime 0).

Usage: python3 tools/gen_redact_log_events.py
"""
import base64
import gzip
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "functions", "redact-log", "tests", "fixtures")
EVENTS = os.path.join(ROOT, "events", "redact-log")
LOG_GROUP = "/aws/bedrock/modelinvocations"
STREAM = "aws/bedrock/modelinvocations"
TS = 1795339812000


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def wrap(messages, message_type="DATA_MESSAGE"):
    payload = {
        "messageType": message_type,
        "owner": "111122223333",
        "logGroup": LOG_GROUP,
        "logStream": STREAM,
        "subscriptionFilters": ["promptseal-redact-log"],
        "logEvents": [
            {"id": str(37900000000000000000000000000000000000000000000000000000 + i),
             "timestamp": TS + i, "message": m}
            for i, m in enumerate(messages)
        ],
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return encode(gzip.compress(raw, mtime=0))


def encode(data):
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def dumps(record):
    return json.dumps(record, separators=(",", ":"))


def write(name, event):
    with open(os.path.join(EVENTS, name), "w") as f:
        json.dump(event, f, indent=2)
        f.write("\n")


def main():
    os.makedirs(EVENTS, exist_ok=True)
    converse = fixture("converse.json")
    anthropic = fixture("invoke-model-anthropic.json")
    s3 = fixture("converse-s3-bodies.json")
    globex = dict(converse, requestId="6f1c2d3e-0000-4000-a000-00000000beef",
                  requestMetadata=dict(converse["requestMetadata"], tenant_id="globex"))
    unattributed = dict(converse, requestId="6f1c2d3e-0000-4000-a000-00000000f00d",
                        requestMetadata={})
    unknown = dict(converse, schemaType="SomethingElse")
    write("converse.json", wrap([dumps(converse)]))
    write("invoke-model-anthropic.json", wrap([dumps(anthropic)]))
    write("s3-bodies.json", wrap([dumps(s3)]))
    write("mixed-batch.json", wrap([
        dumps(converse), dumps(anthropic), dumps(globex), dumps(unattributed),
        "this is not JSON", dumps(unknown),
    ]))
    write("control-message.json", wrap(["CWL CONTROL MESSAGE: Checking health of destination"],
                                       message_type="CONTROL_MESSAGE"))
    write("bad-base64.json", {"awslogs": {"data": "H4sIAAAA!!not base64!!"}})
    write("bad-gzip.json", encode(b"this is not gzip data at all"))


if __name__ == "__main__":
    main()
