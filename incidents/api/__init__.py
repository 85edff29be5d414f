"""The JSON API under /api/v1/ (Django REST framework), its tokens, and its OpenAPI schema.

- `models`: ApiToken, stored as a SHA-256 digest of a random secret (see `tokens`).
- `authentication`: `Authorization: Bearer <token>`; `throttling`: a rate per token.
- `views` / `serializers`: thin views over `incidents.selectors`, `incidents.filters` and
  `incidents.ingest`, with the dashboard's permissions (`incidents.roles`).
"""
