#!/usr/bin/env python3
"""An independent AMQP consumer of xiezhi's feeds (Python + pika, no xiezhi code).

Reads a named consumer's durable queue, acknowledging each message, and prints one JSON line per
message: {"routing_key": ..., "message_id": ..., "content_type": ..., "body": <the CloudEvent>}.
Stops after --max messages, or once the queue stays empty for --idle seconds.

    python3 feed_consumer.py --url amqp://guest:guest@127.0.0.1:5672/%2f --queue xiezhi.feeds.dw
"""
import argparse
import json
import sys
import time

import pika


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--max", type=int, default=0, help="stop after this many (0: no limit)")
    ap.add_argument("--idle", type=float, default=2.0, help="stop after this long without a message")
    args = ap.parse_args()

    conn = pika.BlockingConnection(pika.URLParameters(args.url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=100)
    got = 0
    last = time.monotonic()
    for method, props, body in ch.consume(args.queue, inactivity_timeout=0.2):
        if method is None:
            if time.monotonic() - last > args.idle:
                break
            continue
        last = time.monotonic()
        event = json.loads(body)
        line = {
            "routing_key": method.routing_key,
            "message_id": props.message_id,
            "content_type": props.content_type,
            "redelivered": method.redelivered,
            "body": event,
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        ch.basic_ack(method.delivery_tag)
        got += 1
        if args.max and got >= args.max:
            break
    ch.cancel()
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
