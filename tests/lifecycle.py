"""The incident lifecycle as the design states it (CONTRACT.md, "Lifecycle"), written out by hand.

Transition tests take their expectations from this table, never from `incidents.choices`: a
wrong edge in the code's table then fails a test instead of changing what the tests expect.
"""

STATUSES = ("pending", "investigating", "resolved", "failed", "agent_failed")

# status -> the statuses it may move to; a move back to pending is a requeue.
LIFECYCLE: dict[str, frozenset[str]] = {
    "pending": frozenset({"investigating", "failed", "agent_failed"}),
    "investigating": frozenset({"resolved", "failed", "agent_failed", "pending"}),
    "resolved": frozenset({"pending"}),
    "failed": frozenset({"pending"}),
    "agent_failed": frozenset({"pending"}),
}

ALL_MOVES = [(src, dst) for src in STATUSES for dst in STATUSES if src != dst]
ALLOWED = [(src, dst) for src, dst in ALL_MOVES if dst in LIFECYCLE[src]]
FORBIDDEN = [(src, dst) for src, dst in ALL_MOVES if dst not in LIFECYCLE[src]]
