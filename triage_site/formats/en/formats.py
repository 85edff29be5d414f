"""Date formats for English pages (Django's admin uses them; the dashboard's templates spell
their own): times to the second, with the zone, as the dashboard shows them (UTC)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
