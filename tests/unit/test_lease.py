"""The relay's lease, counted on its own clock: when it publishes freely, renews, or gives up."""

from __future__ import annotations

from cqrs_demo.messaging.lease import LeaderLease


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Session:
    """Stands in for the leader's connection: answers each statement by the lease's own hooks."""

    def __init__(self, lease_of) -> None:
        self.lease_of = lease_of
        self.statements: list[str] = []

    def exec_driver_sql(self, statement: str) -> None:
        lease = self.lease_of()
        lease._sending()
        self.statements.append(statement)
        lease._answered()


def lease_with_clock(term: float = 6.0):
    clock = Clock()
    holder: dict = {}
    session = Session(lambda: holder["lease"])
    lease = holder["lease"] = LeaderLease(session, term, clock=clock)
    return lease, session, clock


def test_a_lease_is_not_held_before_any_statement_was_answered():
    lease, session, _ = lease_with_clock()
    assert not lease.fresh()
    lease.ensure_held()
    assert session.statements == ["SELECT 1"] and lease.fresh()


def test_it_publishes_without_renewing_in_the_first_half_of_the_term():
    lease, session, clock = lease_with_clock(term=6.0)
    session.exec_driver_sql("SELECT rows")
    clock.now += 2.9
    lease.ensure_held()
    assert session.statements == ["SELECT rows"]


def test_past_half_the_term_it_renews_before_publishing():
    lease, session, clock = lease_with_clock(term=6.0)
    session.exec_driver_sql("SELECT rows")
    clock.now += 3.0
    assert not lease.fresh()
    lease.ensure_held()
    assert session.statements == ["SELECT rows", "SELECT 1"]
    assert lease.fresh() and lease.expires_at == clock.now + 6.0


def test_the_term_counts_from_when_the_answered_statement_was_sent():
    lease, session, clock = lease_with_clock(term=6.0)
    lease._sending()
    sent = clock.now
    clock.now += 4.0  # a slow answer: the server may have gone idle as soon as it replied
    lease._answered()
    assert lease.expires_at == sent + 6.0


def test_a_statement_unanswered_past_the_term_is_overdue_and_only_then():
    lease, session, clock = lease_with_clock(term=6.0)
    session.exec_driver_sql("SELECT rows")
    clock.now += 5.0
    lease._sending()  # sent, never answered: a link that swallows packets
    assert not lease.overdue()
    clock.now += 0.99
    assert not lease.overdue()
    clock.now += 0.01
    assert lease.overdue()


def test_nothing_is_overdue_while_no_statement_is_waiting():
    lease, session, clock = lease_with_clock(term=6.0)
    session.exec_driver_sql("SELECT rows")
    clock.now += 60
    assert not lease.overdue()  # idle, not stuck: PostgreSQL has ended the session, the next statement says so
