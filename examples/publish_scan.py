#!/usr/bin/env python3
"""Publish a `scan.recorded` event to EcoEco's bus from another service, the way the contract
in docs/events.md asks: JSON envelope, persistent, confirmed, mandatory.

    pip install pika==1.3.2
    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f AMQP_PREFIX=eco \
        python3 examples/publish_scan.py --user-id 0193...  [--item "PET bottle"] [--broken]

Prints the id of the published event. `--broken` sends a scan whose `confidence` is 1.5 (the
schema allows 0 to 1), to see it parked in `{prefix}.ingest.parked` with reason
`schema_violation` (`ecoctl parked list ingest`).
"""

import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone

import pika


def uuid7() -> str:
    """A time-ordered UUID v7 (Python's uuid module has none before 3.14)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-id", required=True, help="the EcoEco user who scanned")
    parser.add_argument("--item", default="PET bottle", help="what the classifier saw")
    parser.add_argument("--category", default="plastic", help="one of the 9 waste categories")
    parser.add_argument("--broken", action="store_true", help="send a schema violation on purpose")
    args = parser.parse_args()

    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    prefix = os.environ.get("AMQP_PREFIX", "eco")
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    event_id = uuid7()
    correlation_id = uuid7()
    envelope = {
        "id": event_id,
        "type": "scan.recorded",
        "version": 1,
        "source": "scan-service",
        "aggregate_type": "user",
        "aggregate_id": args.user_id,
        "occurred_at": now,
        "correlation_id": correlation_id,
        "causation_id": None,
        "data": {
            "scan_id": uuid7(),
            "user_id": args.user_id,
            "category": args.category,
            "item_name": args.item,
            "confidence": 1.5 if args.broken else 0.97,
            "scanned_at": now,
        },
    }
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type="application/json",
        message_id=event_id,
        type=envelope["type"],
        timestamp=int(time.time()),
        app_id=envelope["source"],
        headers={"x-correlation-id": correlation_id, "x-event-version": envelope["version"]},
    )
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # basic_publish now raises unless the broker confirms
        channel.basic_publish(
            exchange=f"{prefix}.events",
            routing_key=envelope["type"],
            body=json.dumps(envelope).encode("utf-8"),
            properties=properties,
            mandatory=True,  # raises UnroutableError when no queue is bound
        )
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as error:
        print(f"the broker did not take the event: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print(event_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
