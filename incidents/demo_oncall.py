"""On-call activity for the demo (`manage.py demo_oncall`), made through the store's methods.

After the samples are ingested and triaged, two fictional responders (accounts that cannot sign
in) work the queue the way a shift would: older finished incidents are closed with every kind of
resolution, some newer ones acknowledged and assigned, one noted, one closed and reopened, and a
silence is put on the staging clusters for four hours. The newest stay open. Once the shift has
been played, running it again does nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents.choices import OnCallState, Resolution, Status
from incidents.models import Incident, IncidentActivity, Silence
from incidents.roles import responder_group
from incidents.store import DjangoStateStore, StoreError

RESPONDERS = ("alice", "bob")
SILENCE_COMMENT = "staging clusters are being upgraded; expect node and scheduling noise"
RESOLUTIONS = (
    Resolution.FIXED, Resolution.FIXED, Resolution.FALSE_POSITIVE, Resolution.WONT_FIX,
    Resolution.DUPLICATE,
)  # fmt: skip


def _responders() -> list:
    users = []
    group = responder_group()
    for name in RESPONDERS:
        user, created = get_user_model().objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        users.append(user)
    return users


def play_oncall(store: DjangoStateStore | None = None) -> Counter[str]:
    """Act on the stored incidents as a shift would; what was done, by kind."""
    store = store or DjangoStateStore()
    alice, bob = _responders()
    done: Counter[str] = Counter()
    if IncidentActivity.objects.filter(actor__in=[alice, bob], incident__isnull=False).exists():
        return done  # the shift has been played already: a rerun of `make demo`
    finished = list(
        Incident.objects.filter(oncall_state=OnCallState.OPEN)
        .exclude(status__in=[Status.PENDING, Status.INVESTIGATING])
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    half = len(finished) // 2
    # Each step is a store call with its arguments bound.
    steps: list[tuple[str, Callable[[], object]]] = []
    for n, pk in enumerate(finished[:half]):  # the older half: closed
        steps.append(("closed", partial(store.close_incident,
            pk, by=(alice, bob)[n % 2], resolution=RESOLUTIONS[n % len(RESOLUTIONS)],
            note="rolled back the release" if n % 5 == 0 else "",
        )))  # fmt: skip
    for n, pk in enumerate(finished[half : half + 6]):  # some newer ones: someone is on them
        user = (alice, bob)[n % 2]
        steps.append(("acknowledged", partial(store.acknowledge_incident, pk, by=user)))
        steps.append(("assigned", partial(store.assign_incident, pk, assignee=user, by=user)))
        if n == 0:
            steps.append(("noted", partial(store.add_incident_note,
                pk, text="Rollout paused; watching the error rate before rolling back.", by=user,
            )))  # fmt: skip
    if finished[:half]:
        pk = finished[half - 1]
        steps.append(("reopened", partial(store.reopen_incident,
            pk, by=bob, note="It fired again after the fix.",
        )))  # fmt: skip
    for kind, step in steps:
        try:
            step()
        except StoreError:
            continue  # already done by an earlier run
        done[kind] += 1
    if steps and not Silence.objects.filter(comment=SILENCE_COMMENT, expired_at__isnull=True,
                                  ends_at__gt=timezone.now()).exists():  # fmt: skip
        store.create_silence(
            by=alice, ends_at=timezone.now() + timedelta(hours=4), comment=SILENCE_COMMENT,
            cluster="staging-*",
        )  # fmt: skip
        done["silenced"] += 1
    return done
