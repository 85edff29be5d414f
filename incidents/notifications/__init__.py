"""Notifications: Slack and signed webhooks when a fault opens, a report is ready, or the agents
break.

A transactional outbox. The store writes a `Notification` row per routed channel in the same
transaction as the state change it announces (`outbox.enqueue` and the hooks beside it), so a
crash cannot lose or invent one; ingestion writes one `NotificationBatch` row per batch of
opened incidents, which a deliverer routes into Notification rows (`outbox.fan_out`).
`manage.py deliver_notifications` (`delivery.Deliverer`) sends them at least once, each with a
stable idempotency key. Routing (event, severity, cluster) is decided when the rows are written:
a channel added later does not receive old events.

Modules: `kinds` (the event vocabulary, no Django models), `channels` (masking, creating
channels), `outbox` (enqueue, the store's hooks, claims and results), `breaker` (the agents'
circuit breaker), `messages` (Slack Block Kit and the signed webhook body), `delivery` (HTTP,
retries, the deliverer loop).

This package's `__init__` imports nothing, so `incidents.models` can import `kinds`.
"""
