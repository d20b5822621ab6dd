"""The projector: consumes events from RabbitMQ and applies them to the MongoDB read model.

It consumes from a durable queue with manual acknowledgements and a prefetch window, and applies
whatever has arrived as one batch (see `batch`). A message is acknowledged only after its effect
is in MongoDB (or it proved a duplicate), so a crash at any point redelivers it, and the version
check in `versioned` makes the redelivery harmless. An event that arrives before its predecessor
(possible with two projectors sharing the queue) is kept in hand and tried again with the next
batch, never skipped (`kept_gaps`).

What cannot be applied is set aside without breaking its product's order:
- an event that keeps failing, or kills whoever applies it, is dead-lettered after
  `poison_attempts` tries, counted in MongoDB across every projector (`attempts`);
- a message that is not an event is dead-lettered at once; its headers still name its stream;
- an event of a schema version this projector does not know is parked (`upcasting`);
and each time, the product is held and its later events parked until the stream can go on
(`poison`).

Every applied event's publication number is recorded for the watermark (`watermark`); a
periodic tick advances the watermark and records the queue's depth in the status record.

With `partitions` N > 1 it consumes every partition queue; the broker makes it the active
consumer of some of them (single active consumer), a standby on the others, and the projectors
spread the partitions between them (`partition_balance`). Each partition's consumer, depth and
watermark are recorded (`partition_status`).

The guarantee toggles in `Settings` (auto-ack, deduplication off, naive delivery) exist only to
show what each guarantee buys; the defaults keep all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pika.exceptions
import pymongo.errors
from pymongo import UpdateOne

from cqrs_demo import failpoints
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, close_quietly, mongo_client, raise_if_closed
from cqrs_demo.messaging import headers as message_headers
from cqrs_demo.messaging import partition_layout, topology
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import attempts, audit, notices, partition_status, poison, projection, watermark
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.batch import project_batch
from cqrs_demo.read.delivery import Delivery, read_delivery
from cqrs_demo.read.kept_gaps import KeptGaps
from cqrs_demo.read.partition_balance import PartitionBalance, new_consumer_id
from cqrs_demo.read.upcasting import UPCASTERS, UnknownSchemaVersion, Upcasters
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.read.generations import REFRESH_SECONDS, Following, apply_to_building
from cqrs_demo.startup import MONGODB_DOWN, wait_for

log = logging.getLogger(__name__)

RECOVERABLE = (pika.exceptions.AMQPError, pymongo.errors.PyMongoError, ConnectionError, OSError)
REPLAY_HEADER = "x-replayed"
TICK_SECONDS = 0.5  # how often the watermark advances and the queue depth is measured
STANDBY_DELAY = 2.0  # seconds before a projector also stands by on the partitions that are not its own


class Projector:
    def __init__(self, settings: Settings, prefetch: int | None = None, gap_retry_delay: float = 0.05,
                 upcasters: Upcasters | None = None) -> None:
        self.settings = settings
        self.prefetch = prefetch or settings.projector_prefetch
        self.gap_retry_delay = gap_retry_delay
        # What this projector can read: a projector started with an older registry holds newer events.
        self.upcasters = upcasters or UPCASTERS
        self.client = mongo_client(settings)
        # The live generation's collections, followed across a rebuild's switch (`generations`).
        self.db = Following(self.client[settings.mongo_database], refresh_seconds=REFRESH_SECONDS)
        self.counts: dict[str, int] = {}
        self._pending: list = []
        self._kept = KeptGaps()  # gaps, tried again every `gap_retry_delay` until their predecessor is in
        self._stop = threading.Event()
        self._next_tick = 0.0
        self.consumer_id = new_consumer_id()
        self.balance = PartitionBalance(self.db, self.consumer_id, settings.partitions) if settings.partitions > 1 else None
        self._channels: dict[int, object] = {}  # partition -> the channel this projector consumes it on
        self._partition_of_channel: dict[int, int] = {}  # channel number -> partition
        self._active: set[int] = set()  # partitions delivered to this projector since the last tick
        self._standby_later: list[int] = []
        self._standby_due = 0.0
        self._announcer: notices.Announcer | None = None  # while connected (`run`)
        # Whether the namespace had held streams at the last tick (or this projector held one
        # since): only then does a flush that applied events look for holds to settle (`poison`).
        self._holds_seen = True

    # -- applying events ---------------------------------------------------------------------

    def apply(self, event: Event, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one event and record it in the status (and, when auditing, the application log)."""
        event = self.upcasters.upcast(event)
        outcome = projection.project(self.db, event, self._trace(headers), dedup=self.settings.projector_dedup)
        apply_to_building(self.db, [event])
        self._record([(event, outcome, headers or {})])
        return outcome

    def handle(self, body: bytes, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one message body; raises MalformedEvent for a message that is not an event."""
        return self.apply(Event.from_json(body), headers)

    def _trace(self, headers: dict[str, Any] | None) -> dict[str, Any]:
        trace: dict[str, Any] = {"delivered_at": datetime.now(timezone.utc)}
        published_at = (headers or {}).get("published_at")
        if isinstance(published_at, str):
            trace["published_at"] = published_at
        return trace

    def _apply_all(self, deliveries: list[Delivery]) -> list:
        failpoints.trip_applying(self.settings, {d.event.event_id for d in deliveries})
        items = [(d.event, self._trace(d.headers)) for d in deliveries]
        apply_to_building(self.db, [d.event for d in deliveries])
        if self.settings.projector_dedup:
            return project_batch(self.db, items)
        results = []
        for event, trace in items:
            try:
                results.append(projection.project(self.db, event, trace, dedup=False))
            except MalformedEvent as exc:
                results.append(exc)
        return results

    def _record(self, results: list[tuple[Event, Outcome, dict[str, Any]]]) -> None:
        """Status counters, the application log, and the publication numbers now in the read model."""
        if not results:
            return
        for _, outcome, _ in results:
            name = projection.COUNTERS[outcome]
            self.counts[name] = self.counts.get(name, 0) + 1
        newest = max((event for event, _, _ in results), key=lambda e: e.position)
        lag_ms = (datetime.now(timezone.utc) - datetime.fromisoformat(newest.committed_at)).total_seconds() * 1000
        # One bulk write for the three records: they share the status collection for this.
        writes = [projection.status_write([(e, o) for e, o, _ in results], lag_ms),
                  *partition_status.flush_writes(self.consumer_id, results, lag_ms),
                  *watermark.record_writes(self._publications([h for _, o, h in results if o is not Outcome.GAP]))]
        self.db[projection.STATUS].bulk_write(writes, ordered=False)
        if self.settings.projection_audit:
            now = datetime.now(timezone.utc)
            self.db[APPLICATIONS].insert_many(
                [
                    {"event_id": e.event_id, "position": e.position, "aggregate_type": e.aggregate_type,
                     "aggregate_id": e.aggregate_id, "version": e.aggregate_version, "outcome": o.value, "at": now,
                     # when the relay sent it: the outbox's `published_at` is when it was marked, after the confirm
                     "published_at": h.get(message_headers.PUBLISHED_AT)}
                    for e, o, h in results
                ]
            )

    def _announce(self, results: list[tuple[Event, Any]]) -> None:
        """Tell the query services which documents reached which versions (`notices`)."""
        if self._announcer is None:
            return
        announced = []
        for event, result in results:
            collection = projection.read_collection(event.aggregate_type)
            if collection and isinstance(result, Outcome) and result is not Outcome.GAP:
                announced.append((collection, event.aggregate_id, event.aggregate_version))
        self._announcer.announce(announced)

    def _record_publications(self, headers: list[dict[str, Any]]) -> None:
        watermark.record(self.db, self._publications(headers))

    @staticmethod
    def _publications(headers: list[dict[str, Any]]) -> list[tuple[int, int]]:
        return list(filter(None, map(message_headers.publication_of, headers)))

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.db[projection.STATUS].update_one({"_id": "projector"}, {"$inc": {name: 1}}, upsert=True)

    # -- a batch of deliveries ---------------------------------------------------------------

    def _on_message(self, channel, method, properties, body) -> None:
        self._pending.append((channel, method, properties, body))
        partition = self._partition_of_channel.get(channel.channel_number)
        if partition is not None:
            self._active.add(partition)

    def _read(self, channel, method, properties, body) -> Delivery:
        delivery = read_delivery(method, properties, body, self.upcasters)
        delivery.channel = channel  # acknowledged on the channel it came on: each partition has its own
        return delivery

    def _flush(self) -> None:
        """Apply every delivery received so far, then acknowledge each as its outcome says."""
        # A channel closed meanwhile took its deliveries with it: the broker requeues them.
        deliveries = [self._read(*pending) for pending in self._pending if pending[0].is_open]
        self._pending = []
        readable = []
        for delivery in deliveries:
            if isinstance(delivery.unreadable, UnknownSchemaVersion):
                self._hold_unknown_version(delivery)
            elif delivery.unreadable is not None:
                self._dead_letter(delivery, f"not an event: {delivery.unreadable}")
            else:
                readable.append(delivery)
        if self.settings.auto_ack:
            self._apply_and_settle(readable)
            return
        verdicts = attempts.judge(self.db, [d.event_id for d in readable if d.redelivered])
        batch, suspects, followers = [], [], []
        suspected_streams: set[str] = set()
        for delivery in readable:
            verdict = verdicts.get(delivery.event_id)
            if verdict and verdict.tries >= self.settings.poison_attempts:
                log.error("dead-lettering event %s after %d attempts: the process died applying it",
                          delivery.event_id, verdict.tries)
                self._dead_letter(delivery, f"{verdict.tries} tries ended with the projector gone")
            elif verdict and verdict.crashed:
                suspects.append(delivery)
                suspected_streams.add(delivery.stream.key)
            elif delivery.stream.key in suspected_streams:
                # Behind a suspect of its own stream: applied before it, it would only be a gap.
                followers.append(delivery)
            else:
                batch.append(delivery)
        batch, untried = self._kept.take(batch)
        # Not tried in this flush: should the process die in it, they are not to blame.
        attempts.handed_back(self.db, [d.event_id for d in untried if d.kept_since is None])
        attempts.begin(self.db, [d.event_id for d in batch if d.kept_since is not None])
        gaps = self._apply_and_settle(batch)
        # Redelivered after a crash: each alone, so a crash during its try is its own.
        for suspect in suspects:
            attempts.begin(self.db, [suspect.event_id])
            gaps += self._apply_and_settle([suspect])
        gaps += self._apply_and_settle(followers)
        self._keep(gaps + untried)

    def _keep(self, deliveries: list[Delivery]) -> None:
        """Keep gaps in hand; hand back to the queue those kept too long."""
        self._kept.keep(deliveries)
        for delivery in self._kept.expired():
            if delivery.channel.is_open:
                delivery.channel.basic_nack(delivery.method.delivery_tag, requeue=True)

    def _apply_and_settle(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Apply, acknowledge what is done, retry what failed; the gaps, still in hand."""
        if not deliveries:
            return []
        results = self._apply_all(deliveries)
        # Waiting readers first: the documents are written, and the status can follow.
        self._announce([(d.event, r) for d, r in zip(deliveries, results)])
        self._record([(d.event, r, d.headers) for d, r in zip(deliveries, results) if isinstance(r, Outcome)])
        failpoints.trip(self.settings, failpoints.PROJECTOR_BEFORE_ACK)
        if self.settings.auto_ack:
            for delivery, result in zip(deliveries, results):
                if isinstance(result, MalformedEvent):
                    self._count("dead_lettered")
                    log.error("event %s failed and is gone (auto-ack): %s", delivery.event_id, result)
            return []
        any_gap = any(result is Outcome.GAP for result in results)
        held = poison.held(self.db, [d.stream.key for d in deliveries]) if any_gap or self._holds_seen else set()
        retry, gaps, done, to_settle = [], [], [], set()
        for delivery, result in zip(deliveries, results):
            key = delivery.stream.key
            if isinstance(result, MalformedEvent):
                retry += self._failed(delivery, result)
                continue
            if result is Outcome.GAP:
                if key in held and self._park(delivery):
                    done.append(delivery.event_id)
                    # A settle that scanned the parked copies just before this one was stored
                    # missed it; if it is next in line by now, settle again.
                    if delivery.stream.aggregate_version <= poison.read_version(self.db, key) + 1:
                        to_settle.add(key)
                    continue
                gaps.append(delivery)
                continue
            delivery.channel.basic_ack(delivery.method.delivery_tag)
            done.append(delivery.event_id)
            if key in held:
                to_settle.add(key)
        # A try that found a gap ended cleanly, recorded before anything else in the flush is
        # tried: should the process die with them in hand, their redelivery is not a crash of theirs.
        attempts.handed_back(self.db, [d.event_id for d in gaps])
        attempts.settled(self.db, [d.event_id for d in deliveries
                                   if (d.redelivered or d.kept_since is not None) and d.event_id in done])
        if retry:
            # Give a transient failure a moment, once for the whole batch, then hand them back.
            self._stop.wait(self.gap_retry_delay)
            for delivery in retry:
                delivery.channel.basic_nack(delivery.method.delivery_tag, requeue=True)
        for key in sorted(to_settle):
            self._settle(key)
        return gaps

    def _failed(self, delivery: Delivery, exc: Exception) -> list[Delivery]:
        """Deliveries to retry: this one, until it has had its `poison_attempts` tries."""
        tries = attempts.failed(self.db, delivery.event_id)
        if tries < self.settings.poison_attempts:
            log.warning("event %s failed (attempt %d): %s", delivery.event_id, tries, exc)
            return [delivery]
        log.error("dead-lettering event %s after %d attempts: %s", delivery.event_id, tries, exc)
        self._dead_letter(delivery, str(exc))
        return []

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Reject to the dead-letter queue, holding the message's stream first (if it names one)."""
        stream = delivery.stream
        if stream is not None:
            poison.hold(self.db, stream, reason, delivery.event_id)
            self._holds_seen = True
        else:
            log.error("dead-lettering message %s, which names no stream: %s", delivery.message_id, reason)
        if delivery.event_id:
            attempts.settled(self.db, [delivery.event_id])
        self._count("dead_lettered")
        if not self.settings.auto_ack:
            delivery.channel.basic_reject(delivery.method.delivery_tag, requeue=False)

    def _park(self, delivery: Delivery) -> bool:
        if not poison.park(self.db, delivery.stream, delivery.event_id, delivery.body, delivery.headers):
            return False
        self._count("parked")
        self._ack(delivery)
        return True

    def _ack(self, delivery: Delivery) -> None:
        if not self.settings.auto_ack:  # an auto-acknowledged delivery has no tag left to ack
            delivery.channel.basic_ack(delivery.method.delivery_tag)

    def _hold_unknown_version(self, delivery: Delivery) -> None:
        """An event this projector cannot read yet: its stream waits for a projector that can."""
        stream = delivery.stream
        if stream.aggregate_version <= poison.read_version(self.db, stream.key):
            self._record_publications([delivery.headers])  # already applied by a newer projector
            self._ack(delivery)
            return
        log.warning("holding %s: %s", stream.key, delivery.unreadable)
        poison.hold(self.db, stream, str(delivery.unreadable))
        self._holds_seen = True
        if self._park(delivery):
            return
        attempts.handed_back(self.db, [delivery.event_id])
        delivery.channel.basic_nack(delivery.method.delivery_tag, requeue=True)

    def _settle(self, key: str) -> None:
        result = poison.settle(self.db, key, self.apply, on_duplicate=lambda h: self._record_publications([h]))
        if result.released:
            log.info("released the hold on %s", key)

    def _settle_satisfied_holds(self) -> None:
        """Settle every hold whose awaited version is in the read model: applied by a flush that
        did not look for holds, or by another projector. Notes whether any hold is left."""
        held = poison.holds(self.db)
        for key, waits_for in sorted(held.items()):
            if waits_for is not None and poison.read_version(self.db, key) >= waits_for:
                self._settle(key)
        self._holds_seen = bool(held)

    def settle_held_streams(self) -> None:
        """Apply what is parked and release what can be released: on start, after any crash."""
        for key in poison.streams_to_settle(self.db):
            self._settle(key)

    # -- the consuming loop ------------------------------------------------------------------

    def _tick(self, connection, control) -> None:
        """Now and then: settle holds that can end, move the watermark, note how many events wait
        in each queue, and hand partitions that are not this projector's own to the next in line."""
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_SECONDS
        self._settle_satisfied_holds()
        watermark.advance(self.db)
        counts = topology.partition_depths(control, self.settings)
        depth = sum(c[0] for c in counts if c is not None)
        depth_record = UpdateOne({"_id": "projector"},
                                 {"$set": {"queue_depth": depth, "queue_checked_at": datetime.now(timezone.utc)}},
                                 upsert=True)
        self.db[projection.STATUS].bulk_write([depth_record, *partition_status.depth_writes(counts)], ordered=False)
        active, self._active = self._active, set()
        if self._standby_later and now >= self._standby_due:
            for partition in self._standby_later:  # now a standby on the others' partitions too
                self._subscribe(connection, partition)
            self._standby_later = []
        if self.balance is not None:
            self.balance.heartbeat()
            crowded = {k for k, c in enumerate(counts) if c is not None and c[1] > 1}
            for k in sorted(self.balance.to_give_up(active, crowded)):
                log.info("handing partition %d to the next projector in line", k)
                self._subscribe(connection, k)

    def _own_partitions_first(self, stop: threading.Event) -> list[int]:
        """The partitions to subscribe to now: its own share; the others' after `STANDBY_DELAY`.

        The broker makes active whoever subscribes to a queue first. Projectors that start
        together each take their own share first, so no partition has to be handed over while
        events flow: a handover is not free (deliveries the old consumer had in flight are put
        back after the new one has received later events, which makes a window of gaps once).
        """
        partitions = list(range(self.settings.partitions))
        if self.balance is None:
            return partitions
        self.balance.heartbeat()
        stop.wait(TICK_SECONDS * 2)  # projectors started with this one announce themselves meanwhile
        self.balance.heartbeat()
        own = self.balance.own()
        self._standby_later = [k for k in partitions if k not in own]
        self._standby_due = time.monotonic() + STANDBY_DELAY
        return sorted(own)

    def _subscribe(self, connection, partition: int) -> None:
        """Consume a partition on a channel of its own; if already consuming it, go to the back of its line.

        Called between batches. Going to the back is closing the partition's channel
        and opening another: the broker requeues what that channel had unacknowledged in the same
        step as it makes the next consumer active, so the next one receives the partition's events
        in order. (A cancel would not: deliveries already under way would be requeued after the
        next consumer has received later ones, and those would be gaps.)
        """
        old = self._channels.pop(partition, None)
        if old is not None:
            self._partition_of_channel.pop(old.channel_number, None)
            if old.is_open:
                old.close()
        channel = connection.channel()
        # Per partition: its share of the window; a projector that holds them all has `prefetch`.
        channel.basic_qos(prefetch_count=max(1, self.prefetch // self.settings.partitions))
        channel.basic_consume(self.settings.projector_queues[partition], self._on_message,
                              auto_ack=self.settings.auto_ack)
        self._channels[partition] = channel
        self._partition_of_channel[channel.channel_number] = partition

    def _prepare_read_model(self) -> None:
        projection.ensure_indexes(self.db)
        watermark.adopt_legacy(self.db)
        partition_status.adopt_legacy(self.db)
        audit.ensure_retention(self.db, self.settings.audit_retention_hours)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting with back-off after any connection failure."""
        self._stop = stop
        if not wait_for("MongoDB", self._prepare_read_model, MONGODB_DOWN, stop):
            return
        backoff = Backoff()
        settled = False
        while not stop.is_set():
            connection = None
            # deliveries of a lost connection are redelivered by the broker
            self._pending, self._kept = [], KeptGaps()
            try:
                if not settled:
                    self.settle_held_streams()
                    settled = True
                connection = amqp_connection(self.settings)
                control = topology.ReopeningChannel(connection)  # declares and passive counts
                partition_layout.declare(control, self.settings, self.db)
                self._announcer = notices.Announcer(connection, self.settings)
                self._channels, self._partition_of_channel = {}, {}
                for partition in self._own_partitions_first(stop):
                    self._subscribe(connection, partition)
                backoff.reset()
                while not stop.is_set():
                    raise_if_closed(connection)
                    # With gaps in hand, they are tried again a moment later, new deliveries or not.
                    connection.process_data_events(time_limit=self.gap_retry_delay if self._kept else 0.2)
                    if self._pending or self._kept:
                        connection.process_data_events(time_limit=0)  # whatever else has arrived
                        self._flush()
                    self._tick(connection, control)
            except RECOVERABLE as exc:
                delay = backoff.next()
                log.warning("projector lost a connection (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
            finally:
                close_quietly(connection)  # unacknowledged messages go back to the queue
        if self.balance is not None:
            try:
                self.balance.leave()  # the others take its partitions now, not when it expires
            except pymongo.errors.PyMongoError:
                pass
