"""Two benchmark scenarios about links: the first command after an idle pause, and relay takeover.

- `first_command_after_idle`: command-to-visible latency of a few warm commands, then of the
  commands right after an idle pause, in outbox and naive mode. Full run: the default heartbeat
  (30 s) and a 150 s pause; quick: a 2 s heartbeat and a 10 s pause (five timeouts either way).
- `relay_takeover`: two relays, the active one reaching PostgreSQL through a link that is then
  black-holed; how long until the standby holds the lock, and until the cut-off relay notices.
"""

from __future__ import annotations

import threading
import time

import matplotlib.pyplot as plt
from sqlalchemy.engine import make_url

from cqrs_demo import config
from cqrs_demo.bench.record import percentiles
from cqrs_demo.connections import amqp_connection, write_engine
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.proxy import LinkProxy
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.relay import OutboxRelay
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.write.schema import create_schema, drop_schema

RECONNECT_SIGNS = ("lost a connection", "died while idle", "lost: publish after commit failed")


def _visible_ms(stack: LabStack, client: WorkbenchClient, product_id: int, quantity: int) -> float | None:
    """Milliseconds from sending an update to its version in the read model; None if never (lost)."""
    started = time.perf_counter()
    version = client.update_product(product_id, quantity=quantity).body["version"]
    try:
        wait_until(lambda: (stack.read_db["products"].find_one({"_id": product_id}, {"version": 1}) or {})
                   .get("version", 0) >= version, 5, interval=0.002)
    except WaitTimeout:
        return None
    return round((time.perf_counter() - started) * 1000, 1)


def first_command_after_idle(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    heartbeat, idle = (2, 10) if quick else (30, 150)
    stacks = {mode: LabStack(namespace=f"bench_idle_{mode}", delivery=mode, amqp_heartbeat_seconds=heartbeat).start()
              for mode in ("outbox", "naive")}
    results: dict = {}
    try:
        clients, products, warm = {}, {}, {}
        for mode, stack in stacks.items():
            clients[mode] = WorkbenchClient.for_stack(stack)
            products[mode] = clients[mode].create_product("Idle", "1.00", 10**6, f"SKU-IDLE-{mode}").body["id"]
            warm[mode] = [_visible_ms(stack, clients[mode], products[mode], n) for n in range(1, 21)]
        time.sleep(idle)
        for mode, stack in stacks.items():
            after = [_visible_ms(stack, clients[mode], products[mode], 100 + n) for n in range(12)]
            logs = "\n".join(stack.logs(name, 1000) for name in stack.settings.services)
            results[mode] = {
                "warm_ms": percentiles(warm[mode]),
                "first_after_idle_ms": after[0],
                "next_after_idle_ms": after[1:],
                "lost_after_idle": sum(1 for ms in after if ms is None),
                "reconnects_logged": sum(logs.count(sign) for sign in RECONNECT_SIGNS),
            }
    finally:
        for stack in stacks.values():
            stack.stop()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    modes = list(results)
    ax.bar([m + "\nwarm p50" for m in modes], [results[m]["warm_ms"]["p50"] for m in modes])
    ax.bar([m + "\nfirst after idle" for m in modes], [results[m]["first_after_idle_ms"] or 0 for m in modes])
    ax.set_ylabel("command to visible, ms")
    ax.set_title(f"After {idle}s idle (heartbeat {heartbeat}s)")
    fig.tight_layout()
    return {"heartbeat_seconds": heartbeat, "idle_seconds": idle}, results, fig


def _through(link: LinkProxy, settings):
    url = make_url(settings.database_url).set(host="127.0.0.1", port=link.port)
    return settings.with_(database_url=url.render_as_string(hide_password=False))


def _takeover_once(settings) -> dict:
    url = make_url(settings.database_url)
    link = LinkProxy(url.host or "127.0.0.1", url.port or 5432).start()
    stops = {"active": threading.Event(), "standby": threading.Event()}
    relays = {"active": OutboxRelay(_through(link, settings)), "standby": OutboxRelay(settings)}
    threads = {name: threading.Thread(target=relays[name].run, args=(stops[name],), daemon=True) for name in relays}
    try:
        threads["active"].start()
        wait_until(lambda: relays["active"].is_leader, 20, what="the active relay")
        threads["standby"].start()
        time.sleep(2 * settings.relay_poll_seconds)  # the standby has asked for the lock and been refused
        link.blackhole()
        cut = time.monotonic()
        wait_until(lambda: relays["standby"].is_leader, 60, interval=0.01, what="the standby to take over")
        takeover = time.monotonic() - cut
        wait_until(lambda: not relays["active"].is_leader, 60, interval=0.01, what="the cut-off relay to notice")
        return {"takeover_s": round(takeover, 3), "cut_off_relay_noticed_s": round(time.monotonic() - cut, 3)}
    finally:
        link.restore()
        for name in relays:
            stops[name].set()
        for name, thread in threads.items():
            thread.join(15)
            relays[name].engine.dispose()
        link.stop()


def relay_takeover(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    runs = 1 if quick else 5
    settings = config.from_environment().with_(namespace="bench_takeover")
    engine = write_engine(settings)
    create_schema(settings, engine)
    try:
        measured = [_takeover_once(settings) for _ in range(runs)]
    finally:
        drop_schema(settings, engine)
        engine.dispose()
        connection = amqp_connection(settings)
        topology.delete_all(connection.channel(), settings)
        connection.close()
    results = {
        "runs": measured,
        "takeover_s": percentiles([m["takeover_s"] for m in measured]),
        "cut_off_relay_noticed_s": percentiles([m["cut_off_relay_noticed_s"] for m in measured]),
    }
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([m["takeover_s"] for m in measured], "o-", label="standby holds the lock")
    ax.plot([m["cut_off_relay_noticed_s"] for m in measured], "s--", label="cut-off relay stops leading")
    ax.axhline(settings.relay_lease_seconds, color="grey", lw=0.8, label="lease")
    ax.set_xlabel("run")
    ax.set_ylabel("seconds after the cut")
    ax.legend()
    fig.tight_layout()
    return {"runs": runs, "relay_lease_seconds": settings.relay_lease_seconds,
            "relay_poll_seconds": settings.relay_poll_seconds}, results, fig
