"""Is the AI right? Verdicts on reports, the accuracy scoreboard, report-to-report comparison.

- `verdicts`: the store's `record_report_verdict` (a mixin of `DjangoStateStore`).
- `scoreboard`: the read-side numbers of `/quality/` (bounded GROUP BYs).
- `compare`: a report's headline, and its section-by-section comparison with the previous one.
- `views`, `forms`: the verdict form on the report page and the scoreboard page.
"""
