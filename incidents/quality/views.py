"""The quality pages: the verdict form and comparison on the report page, the verdict POST, and
the scoreboard at /quality/.

Recording a verdict needs the responder's permission or staff; the report page offers the form
only to those who may use it. The store's refusals come back as messages on the report page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from incidents.models import ReportVerdict, TriageReport
from incidents.quality.compare import compare_sections, same_conclusion
from incidents.quality.forms import ScoreboardForm, VerdictForm
from incidents.quality.scoreboard import scoreboard
from incidents.roles import RESPOND, VIEW_INCIDENTS, VIEW_REPORTS
from incidents.store import DjangoStateStore, ReportNotFound, StoreError


def may_judge(user) -> bool:
    """Responders judge reports; so does staff (who correct records anyway)."""
    return user.is_active and (user.is_staff or user.has_perm(RESPOND))


def previous_report(report: TriageReport) -> TriageReport | None:
    """The latest report of the same fault generated before `report` (any of its incidents: a
    re-run's report follows its incident's first one)."""
    return (
        TriageReport.objects.filter(
            incident__fault_id=report.incident.fault_id, generated_at__lt=report.generated_at
        )
        .exclude(pk=report.pk)
        .defer("report_html")
        .order_by("-generated_at", "-report_id")
        .first()
    )


def comparison_context(report: TriageReport) -> dict:
    previous = previous_report(report)
    if previous is None:
        return {"previous": None}
    return {
        "previous": previous,
        "same_conclusion": same_conclusion(previous.headline_cause, report.headline_cause),
        "sections": compare_sections(previous.report_markdown, report.report_markdown),
    }


def report_quality_context(request: HttpRequest, report: TriageReport) -> dict:
    """What the report page shows of verdicts and comparison."""
    verdicts = list(
        ReportVerdict.objects.filter(report=report).select_related("user").order_by("-updated_at")
    )
    context = {
        "verdicts": verdicts,
        "can_judge": may_judge(request.user),
        **comparison_context(report),
    }
    if context["can_judge"]:
        mine = next((row for row in verdicts if row.user_id == request.user.pk), None)
        initial = (
            {"verdict": mine.verdict, "actual_cause": mine.actual_cause, "note": mine.note}
            if mine
            else {}
        )
        context.update(verdict_form=VerdictForm(initial=initial), my_verdict=mine)
    return context


class VerdictView(View):
    """POST /reports/<id>/verdict/: the signed-in person's verdict, then back to the report."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, report_id) -> HttpResponse:
        if not may_judge(request.user):
            return HttpResponse("Recording a verdict needs the responder role.", status=403)
        back = reverse("incidents:report", args=[report_id]) + "#verdicts"
        form = VerdictForm(request.POST)
        if not form.is_valid():
            errors = " ".join(
                f"{name}: {' '.join(str(msg) for msg in msgs)}"
                for name, msgs in form.errors.items()
            )
            messages.error(request, f"No verdict recorded: {errors}")
            return HttpResponseRedirect(back)
        try:
            row = DjangoStateStore().record_report_verdict(
                report_id, by=request.user, **form.cleaned_data
            )
        except ReportNotFound as error:
            raise Http404(str(error)) from None
        except StoreError as error:
            detail = getattr(error, "errors", None)
            text = (
                " ".join(f"{name}: {' '.join(msgs)}" for name, msgs in detail.items())
                if detail
                else str(error)
            )
            messages.error(request, f"No verdict recorded: {text}")
        else:
            messages.success(request, f"Your verdict: {row.get_verdict_display().lower()}.")
        return HttpResponseRedirect(back)


class ScoreboardView(PermissionRequiredMixin, TemplateView):
    """GET /quality/: judged share and verdict shares for a window and filters; 400 with the
    form's errors for invalid parameters."""

    permission_required = (VIEW_INCIDENTS, VIEW_REPORTS)
    template_name = "incidents/quality.html"

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = ScoreboardForm(request.GET)
        valid = form.is_valid()
        context = self.get_context_data(
            form=form, board=scoreboard(form.filters()) if valid else None
        )
        return self.render_to_response(context, status=200 if valid else 400)
