#!/usr/bin/env python3
"""A consumer of xiezhi's HTTP feed (docs/feeds.md), standard library only.

Pages `GET /v1/feeds/{feed}` in change-sequence order and keeps a copy of the records it reads:
one entry per (record type, natural key) holding the newest version, tombstones included.

* With --consumer NAME (a `[[feeds.consumers]]` entry) the server keeps the cursor: each request
  with `after=N` confirms everything up to N, and a request without `after` resumes from the last
  confirmed position. The script confirms a page by asking for the next one, after it applied
  (and, with --state, saved) the page, so a crash re-reads at most one page. It only confirms
  `next_after` values the server gave it (or --after): the server refuses an `after` that is
  neither 0 nor a stored change's sequence. The consumer's masking level is configured: --masking
  cannot be combined with --consumer.
* Without --consumer the cursor is local (`after` in the --state file, or --after).
* Once caught up it long-polls (`wait`), unless --once is given.
* Events are deduplicated by `id`, and an event whose `version` is not newer than the version
  held is ignored, so repeats and reordering do no harm. `op: delete` leaves a tombstone (kept,
  so that an older version arriving late cannot bring the record back).

Examples:

    export XIEZHI_TOKEN=xz_...
    python3 http_consumer.py --base-url http://127.0.0.1:8080 --consumer dw --feed penalty \\
        --state dw-penalty.json
    python3 http_consumer.py --feed all --masking public --once --print-events
"""
import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict

OPS = ("create", "supersede", "delete")


class Replica:
    """The consumer's copy of the feed: (recordtype, subject) -> newest version seen."""

    def __init__(self, recent_ids: int = 100_000):
        self.records = {}
        self.recent = OrderedDict()
        self.recent_max = recent_ids
        self.counts = {"create": 0, "supersede": 0, "delete": 0, "duplicate": 0, "stale": 0,
                       "gap": 0, "skipped": 0}

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
        if e.get("type") != "gov.enforcement.%s.v1" % e.get("recordtype") or e.get("op") not in OPS:
            # Another major version (published side by side) or an op this consumer does not know.
            self.counts["skipped"] += 1
            return "skipped"
        key = (e["recordtype"], e["subject"])
        held = self.records.get(key)
        if held is not None and held["version"] >= e["version"]:
            self.counts["stale"] += 1
            return "stale"
        if e["op"] != "create" and (held is None or held["id"] != e.get("supersedes")):
            # A version in between was not seen (reading from the middle of the feed, or bindings
            # that let only some versions through). Every event carries the whole record, so
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

    def dump(self, after) -> dict:
        return {
            "after": after,
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


class Fatal(Exception):
    pass


def get_page(args, params: dict) -> dict:
    """One GET of the feed; retries while the server or the network is away, stops on a 4xx."""
    url = "%s/v1/feeds/%s?%s" % (args.base_url.rstrip("/"), urllib.parse.quote(args.feed),
                                 urllib.parse.urlencode(params))
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + args.token,
                                               "Accept": "application/json"})
    delay = 1.0
    while True:
        try:
            with urllib.request.urlopen(req, timeout=int(params.get("wait", 0)) + 30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = body
            if e.code < 500:
                raise Fatal("HTTP %d: %s" % (e.code, message)) from None
            reason = "HTTP %d: %s" % (e.code, message)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = str(e)
        print("feed unavailable (%s); retrying in %.0fs" % (reason, delay), file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Read a xiezhi HTTP feed into a local copy of the records (docs/feeds.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples:", 1)[1] if "Examples:" in __doc__ else None)
    ap.add_argument("--base-url", default=os.environ.get("XIEZHI_URL", "http://127.0.0.1:8080"),
                    help="xiezhi's API (default $XIEZHI_URL or http://127.0.0.1:8080)")
    ap.add_argument("--token", default=os.environ.get("XIEZHI_TOKEN"),
                    help="bearer token (default $XIEZHI_TOKEN); viewer for public, operator above")
    ap.add_argument("--feed", default="all", help="a record type (penalty, …) or `all` (default)")
    ap.add_argument("--consumer", help="a configured consumer name: the server keeps its cursor")
    ap.add_argument("--masking", choices=["public", "shared", "internal"],
                    help="level without --consumer (default public); not with --consumer, "
                         "whose level is configured")
    ap.add_argument("--after", type=int,
                    help="start after this sequence (≥ 0); with --consumer this also moves its "
                         "cursor, and must be 0 or a sequence the feed returned (a next_after)")
    ap.add_argument("--limit", type=int, default=500, help="events per page, 1–1000 (default 500)")
    ap.add_argument("--wait", type=int, default=30, help="long-poll seconds when caught up, 0–60")
    ap.add_argument("--once", action="store_true", help="stop when caught up instead of polling")
    ap.add_argument("--state", help="JSON file keeping the records (and the local cursor)")
    ap.add_argument("--print-events", action="store_true", help="one line per event to stdout")
    args = ap.parse_args()
    if not args.token:
        ap.error("a token is needed: --token or $XIEZHI_TOKEN")
    if not 1 <= args.limit <= 1000 or not 0 <= args.wait <= 60:
        ap.error("--limit must be 1–1000 and --wait 0–60")
    if args.consumer and args.masking:
        ap.error("--masking cannot be used with --consumer (the consumer's level is configured)")
    if args.after is not None and args.after < 0:
        ap.error("--after must be a whole number ≥ 0")

    replica = Replica()
    after = None
    if args.state and os.path.exists(args.state):
        with open(args.state, encoding="utf-8") as f:
            state = json.load(f)
        replica.load(state)
        if not args.consumer:
            after = state.get("after")
    if args.after is not None:
        after = args.after
    if after is None and not args.consumer:
        after = 0

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    caught_up = False
    pages = 0
    try:
        while not stop:
            params = {"limit": args.limit}
            if args.consumer:
                params["consumer"] = args.consumer
            elif args.masking:
                params["masking"] = args.masking
            if after is not None:
                params["after"] = after  # with a consumer: confirms everything up to `after`
            if caught_up and not args.once and args.wait:
                params["wait"] = args.wait
            page = get_page(args, params)
            pages += 1
            for e in page["events"]:
                did = replica.apply(e)
                if args.print_events:
                    print(json.dumps({"seq": e["seq"], "op": e["op"], "type": e["recordtype"],
                                      "subject": e["subject"], "version": e["version"],
                                      "applied": did}, ensure_ascii=False))
            next_after = page["next_after"]
            if args.state:
                save(args.state, replica.dump(next_after))
            after = next_after
            if page["events"]:
                print("page %d: %d events, next_after %d%s" % (
                    pages, len(page["events"]), after,
                    ", lag %d" % page["lag"] if "lag" in page else ""), file=sys.stderr)
            caught_up = not page["has_more"]
            if caught_up and args.once:
                break
    except KeyboardInterrupt:
        pass
    except Fatal as e:
        print(e, file=sys.stderr)
        return 2
    if args.consumer and after is not None:
        # Confirm what was applied. The page this request returns is not applied and not
        # confirmed: the next run reads it again.
        try:
            get_page(args, {"consumer": args.consumer, "after": after, "limit": 1})
        except Fatal as e:
            print(e, file=sys.stderr)
            return 2
    summary = dict(replica.counts, after=after, live=replica.live(),
                   tombstones=len(replica.records) - replica.live())
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
