#!/usr/bin/env python3
"""A consumer of xiezhi's AMQP feed (docs/feeds.md), with pika (`pip install pika`).

Consumes a named consumer's durable queue (`<prefix>.<name>`, declared by xiezhi from
`[[feeds.consumers]]`; this script declares nothing) and keeps a copy of the records it reads:
one entry per (record type, natural key) holding the newest version, tombstones included.

* A message is acknowledged only after it was applied (and, with --state, after the state file
  holding it was written; then acks go out together, every --ack-every messages or when the
  queue goes quiet). Unacknowledged messages come back after a reconnect, so nothing is lost.
* Events are deduplicated by `id` (the AMQP message_id is the same id), and an event whose
  `version` is not newer than the version held is ignored: redeliveries, the relay's
  republishes and reordering after a connection loss do no harm.
* `op: delete` leaves a tombstone (kept, so an older version arriving late cannot bring the
  record back).
* A body that is not a CloudEvent of this feed is rejected without requeueing: the broker
  dead-letters it to `<queue>.dead`. An event of another major version (`…v2`) is acked and
  skipped.

Examples:

    python3 amqp_consumer.py --url amqp://guest:guest@127.0.0.1:5672/%2f --consumer dw \\
        --state dw.json
    python3 amqp_consumer.py --queue xiezhi.feeds.portal --idle 5 --print-events
"""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict

try:
    import pika
    import pika.exceptions
except ImportError:  # --help works without pika
    pika = None

OPS = ("create", "supersede", "delete")
REQUIRED = ("id", "type", "recordtype", "subject", "seq", "version", "op")


class Replica:
    """The consumer's copy of the feed: (recordtype, subject) -> newest version seen."""

    def __init__(self, recent_ids: int = 100_000):
        self.records = {}
        self.recent = OrderedDict()
        self.recent_max = recent_ids
        self.counts = {"create": 0, "supersede": 0, "delete": 0, "duplicate": 0, "stale": 0,
                       "gap": 0, "skipped": 0, "dead_lettered": 0}

    def _remember(self, event_id: str) -> None:
        self.recent[event_id] = None
        while len(self.recent) > self.recent_max:
            self.recent.popitem(last=False)

    def apply(self, e: dict) -> str:
        """Applies one CloudEvent; returns what it did."""
        if e["id"] in self.recent:
            self.counts["duplicate"] += 1
            return "duplicate"
        self._remember(e["id"])
        if e["type"] != "gov.enforcement.%s.v1" % e["recordtype"] or e["op"] not in OPS:
            # Another major version (published side by side) or an op this consumer does not know.
            self.counts["skipped"] += 1
            return "skipped"
        key = (e["recordtype"], e["subject"])
        held = self.records.get(key)
        if held is not None and held["version"] >= e["version"]:
            self.counts["stale"] += 1
            return "stale"
        if e["op"] != "create" and (held is None or held["id"] != e.get("supersedes")):
            # A version in between was not seen (the queue was declared later, or its bindings
            # let only some versions through). Every event carries the whole record, so
            # applying it is still right.
            self.counts["gap"] += 1
        self.records[key] = {
            "version": e["version"],
            "seq": e["seq"],
            "id": e["id"],
            "deleted": e["op"] == "delete",
            "data": None if e["op"] == "delete" else e["data"],
        }
        self.counts[e["op"]] += 1
        return e["op"]

    def live(self) -> int:
        return sum(1 for r in self.records.values() if not r["deleted"])

    def dump(self) -> dict:
        return {
            "records": [dict(r, recordtype=t, subject=s) for (t, s), r in self.records.items()],
            "recent_ids": list(self.recent),
        }

    def load(self, state: dict) -> None:
        for r in state.get("records", []):
            r = dict(r)
            self.records[(r.pop("recordtype"), r.pop("subject"))] = r
        for i in state.get("recent_ids", []):
            self._remember(i)


def save(path: str, state: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def parse(body: bytes):
    """The CloudEvent in a message body, or None when it is not one of this feed's."""
    try:
        e = json.loads(body)
    except ValueError:
        return None
    if not isinstance(e, dict) or e.get("specversion") != "1.0":
        return None
    if any(k not in e for k in REQUIRED):
        return None
    return e


class Run:
    def __init__(self, args, replica: Replica):
        self.args = args
        self.replica = replica
        self.channel = None
        self.pending_tag = None  # highest delivery tag applied but not yet acknowledged
        self.pending = 0
        self.received = 0

    def flush(self) -> None:
        """Writes the state, then acknowledges everything applied so far."""
        if self.pending_tag is None:
            return
        if self.args.state:
            save(self.args.state, self.replica.dump())
        self.channel.basic_ack(self.pending_tag, multiple=True)
        self.pending_tag = None
        self.pending = 0

    def handle(self, method, props, body) -> None:
        self.received += 1
        e = parse(body)
        if e is None:
            # Everything before it must be acked first: a reject does not ack them.
            self.flush()
            self.channel.basic_reject(method.delivery_tag, requeue=False)
            self.replica.counts["dead_lettered"] += 1
            print("dead-lettered an unreadable message (message_id %s)" % props.message_id,
                  file=sys.stderr)
            return
        did = self.replica.apply(e)
        if self.args.print_events:
            print(json.dumps({"seq": e["seq"], "op": e["op"], "type": e["recordtype"],
                              "subject": e["subject"], "version": e["version"],
                              "routing_key": method.routing_key,
                              "redelivered": method.redelivered, "applied": did},
                             ensure_ascii=False))
        self.pending_tag = method.delivery_tag
        self.pending += 1
        if not self.args.state or self.pending >= self.args.ack_every:
            self.flush()

    def consume(self) -> bool:
        """Consumes until --max or --idle says stop; returns True when it should stop."""
        conn = pika.BlockingConnection(pika.URLParameters(self.args.url))
        try:
            self.channel = conn.channel()
            self.channel.basic_qos(prefetch_count=self.args.prefetch)
            self.pending_tag, self.pending = None, 0
            quiet_since = time.monotonic()
            for method, props, body in self.channel.consume(self.args.queue,
                                                            inactivity_timeout=0.5):
                if method is None:
                    self.flush()
                    if self.args.idle and time.monotonic() - quiet_since > self.args.idle:
                        return True
                    continue
                quiet_since = time.monotonic()
                self.handle(method, props, body)
                if self.args.max and self.received >= self.args.max:
                    self.flush()
                    return True
            return False
        finally:
            try:
                self.flush()
            except Exception:  # the channel is gone: those messages come back redelivered
                pass
            try:
                conn.close()
            except Exception:
                pass


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Consume a xiezhi feed queue into a local copy of the records (docs/feeds.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples:", 1)[1])
    ap.add_argument("--url", default=os.environ.get("XIEZHI_AMQP_URL",
                                                   "amqp://guest:guest@127.0.0.1:5672/%2f"),
                    help="broker URL (default $XIEZHI_AMQP_URL or the local guest account)")
    ap.add_argument("--consumer", help="consumer name from [[feeds.consumers]]: the queue is "
                                       "<prefix>.<name>")
    ap.add_argument("--prefix", default="xiezhi.feeds",
                    help="feeds.exchange_prefix (default xiezhi.feeds)")
    ap.add_argument("--queue", help="the queue name itself (instead of --consumer)")
    ap.add_argument("--prefetch", type=int, default=100, help="unacked messages at most (100)")
    ap.add_argument("--state", help="JSON file keeping the records; acks wait until it is written")
    ap.add_argument("--ack-every", type=int, default=50,
                    help="with --state: write and ack every N messages (default 50, ≤ prefetch)")
    ap.add_argument("--idle", type=float, default=0,
                    help="stop after this many seconds without a message (default 0: never)")
    ap.add_argument("--max", type=int, default=0, help="stop after N messages (default 0: never)")
    ap.add_argument("--print-events", action="store_true", help="one line per event to stdout")
    args = ap.parse_args()
    if bool(args.consumer) == bool(args.queue):
        ap.error("give --consumer NAME or --queue QUEUE")
    if args.consumer:
        args.queue = "%s.%s" % (args.prefix, args.consumer)
    if args.prefetch < 1 or args.ack_every < 1:
        ap.error("--prefetch and --ack-every must be at least 1")
    # The broker stops delivering at `prefetch` unacked messages: ack before that.
    args.ack_every = min(args.ack_every, args.prefetch)
    if pika is None:
        print("pika is needed: pip install pika", file=sys.stderr)
        return 2

    replica = Replica()
    if args.state and os.path.exists(args.state):
        with open(args.state, encoding="utf-8") as f:
            replica.load(json.load(f))
    run = Run(args, replica)
    delay = 1.0
    try:
        while True:
            try:
                if run.consume():
                    break
                delay = 1.0
            except pika.exceptions.ChannelClosedByBroker as e:
                # 404: the queue does not exist (xiezhi declares it from its configuration).
                print("the broker closed the channel: %s" % e, file=sys.stderr)
                return 2
            except pika.exceptions.AMQPError as e:
                print("connection lost (%r); reconnecting in %.0fs" % (e, delay), file=sys.stderr)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
    except KeyboardInterrupt:
        pass
    summary = dict(replica.counts, received=run.received, live=replica.live(),
                   tombstones=len(replica.records) - replica.live())
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
