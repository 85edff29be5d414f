"""ReportVerdict (a person's verdict on a report) and QualityDay (the scoreboard's counters)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.choices import VERDICT_COLOURS, Verdict
from incidents.models import TriageReport


class ReportVerdict(models.Model):
    """One person's verdict on one triage report: was the agent's conclusion right?

    One row per (report, person), changed in place; each change is also a timeline row of the
    report's incident (`ActivityKind.VERDICT`), which is the history. `actual_cause` is required
    when the report was partly right or wrong. `cluster`, `fault_type` and `generated_at` are
    the report's incident's, copied when the verdict is recorded so the scoreboard groups and
    windows verdicts without joining the incidents table.
    """

    report = models.ForeignKey(
        TriageReport,
        on_delete=models.CASCADE,
        related_name="verdicts",
        db_index=False,  # served by report_verdicts_one_per_person
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="report_verdicts",
        db_index=False,
    )
    verdict = models.CharField(max_length=16, choices=Verdict)
    actual_cause = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    cluster = models.CharField(max_length=255)
    fault_type = models.CharField(max_length=255)
    generated_at = models.DateTimeField(help_text="The report's generated_at.")

    class Meta:
        db_table = "report_verdicts"
        ordering = ["-updated_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(verdict__in=Verdict.values), name="report_verdicts_verdict_valid"
            ),
            models.CheckConstraint(
                condition=~Q(verdict__in=[Verdict.PARTLY_CORRECT, Verdict.WRONG])
                | ~Q(actual_cause=""),
                name="report_verdicts_cause_when_missed",
            ),
            # One verdict per person per report; a deleted account's verdicts stay (user NULL).
            models.UniqueConstraint(
                fields=["report", "user"], name="report_verdicts_one_per_person"
            ),
        ]
        indexes = [
            # The scoreboard: verdicts of reports generated in a window, grouped.
            models.Index(
                fields=["generated_at"],
                name="report_verdicts_generated_idx",
                include=["verdict", "fault_type", "cluster", "report"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} on report {self.report_id}"

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS.get(self.verdict, "grey")

    @property
    def user_label(self) -> str:
        if self.user is None:
            return "(deleted user)"
        return self.user.get_full_name() or self.user.get_username()


class QualityDay(models.Model):
    """The scoreboard's counters for one UTC day's reports of one cluster and fault type: how
    many reports, how many of them judged, and the verdicts by kind.

    Written only by the store, in the transaction that records the report or the verdict, and
    rebuilt whole from `triage_reports` and `report_verdicts` by `incidents.quality.rollup` (the
    migration, and the bulk history loader). A 90-day scoreboard then reads a few thousand rows
    instead of every report and verdict of the window. A report counts under its incident's
    cluster and fault type when it was recorded; a verdict under its own copies of them.
    """

    day = models.DateField()
    cluster = models.CharField(max_length=255)
    fault_type = models.CharField(max_length=255)
    reports = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    correct = models.PositiveIntegerField(default=0)
    partly_correct = models.PositiveIntegerField(default=0)
    wrong = models.PositiveIntegerField(default=0)
    not_useful = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "quality_daily"
        ordering = ["-day"]
        constraints = [
            # Also the scoreboard's index: a window is a range of days.
            models.UniqueConstraint(
                fields=["day", "cluster", "fault_type"], name="quality_daily_one_per_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.cluster} {self.fault_type}: {self.judged}/{self.reports} judged"
