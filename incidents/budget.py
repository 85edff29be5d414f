"""The daily agent budget (`TRIAGE_DAILY_BUDGET_USD`) and today's recorded spend.

Spend is the sum of `cost_usd` over executions completed in the current UTC day, as agents
reported it in `output/result.json` (a run that reported no cost counts as nothing). When it
reaches the budget, workers claim nothing more: incidents stay pending until the next UTC day
or a raised budget. The check before every claim is one query, a range scan of
`agent_executions_spend_idx` (completed_at, costed rows only; index-only on PostgreSQL).

A run already claimed when the budget is reached finishes: the budget is checked before a
claim, not during a run, so a day's spend can exceed it by what the running agents cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from incidents.models import AgentExecution


class _Setting(Enum):
    SETTING = "TRIAGE_DAILY_BUDGET_USD"


# budget_state's default limit: the setting.
SETTING = _Setting.SETTING


@dataclass(frozen=True)
class BudgetState:
    """Today's spend against the daily budget."""

    day: date  # the UTC day
    spent: Decimal
    limit: Decimal | None  # None: no budget

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    @property
    def resumes_at(self) -> datetime:
        """When the budget starts afresh: the next UTC midnight."""
        return datetime.combine(self.day + timedelta(days=1), time.min, tzinfo=UTC)

    def reason(self) -> str:
        return (
            f"daily agent budget reached: ${self.spent:.2f} spent of ${self.limit:.2f} "
            f"on {self.day} "
            f"(UTC); claims resume at {self.resumes_at.isoformat()} or when "
            "TRIAGE_DAILY_BUDGET_USD is raised"
        )


def utc_day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day containing `now`, as [start, end)."""
    start = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def spend_on(now: datetime, *, using: str = "default") -> Decimal:
    """USD recorded on executions completed in `now`'s UTC day. One indexed query."""
    start, end = utc_day_bounds(now)
    total = (
        AgentExecution.objects.using(using)
        .filter(cost_usd__isnull=False, completed_at__gte=start, completed_at__lt=end)
        .aggregate(total=Sum("cost_usd"))["total"]
    )
    return total or Decimal(0)


def budget_state(
    *,
    now: datetime | None = None,
    limit: Decimal | None | _Setting = SETTING,
    using: str = "default",
) -> BudgetState:
    """Today's spend and the budget (settings.TRIAGE_DAILY_BUDGET_USD unless `limit` is given)."""
    now = now or timezone.now()
    budget: Decimal | None = (
        settings.TRIAGE_DAILY_BUDGET_USD if isinstance(limit, _Setting) else limit
    )
    return BudgetState(
        day=now.astimezone(UTC).date(), spent=spend_on(now, using=using), limit=budget
    )


def notify_budget_reached(state: BudgetState, *, using: str = "default") -> int:
    """One `agents_degraded` notification, reason "budget", per UTC day and budget, however
    many workers see the budget reached (the outbox writes a dedup key once per channel).
    Returns the rows offered (0 when no channel takes the event)."""
    from incidents.notifications.kinds import EventKind
    from incidents.notifications.outbox import enqueue

    with transaction.atomic(using=using):
        return enqueue(
            EventKind.AGENTS_DEGRADED,
            using=using,
            dedup_key=f"{EventKind.AGENTS_DEGRADED}:budget:{state.day}:{state.limit}",
            reason="budget",
            spent_usd=f"{state.spent:.2f}",
            budget_usd=f"{state.limit:.2f}",
            day=state.day.isoformat(),
            resumes_at=state.resumes_at,
        )
