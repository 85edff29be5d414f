"""The agents-degraded banner (incidents.notifications.breaker): one cached query at most."""

from django import template

from incidents.notifications.breaker import degraded_since

register = template.Library()


@register.inclusion_tag("incidents/partials/_agents_banner.html")
def agents_banner() -> dict:
    return {"degraded_since": degraded_since()}
