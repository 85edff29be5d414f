"""`manage.py demo_oncall`: on-call activity for the demo (see incidents.demo_oncall)."""

from incidents.demo_oncall import play_oncall
from incidents.management.base import TriageCommand


class Command(TriageCommand):
    help = (
        "Work the stored incidents as an on-call shift would, through the store: close, "
        "acknowledge, assign, note, reopen, and silence the staging clusters for four hours. "
        "For the demo; a second run changes nothing already done."
    )

    def handle(self, *args, **options) -> None:
        done = play_oncall()
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(done.items())) or "nothing to do"
        self.stdout.write(f"demo on-call activity: {summary}")
