"""Agent profiles: `TRIAGE_AGENT_PROFILES`, named agent commands a responder can re-run with.

The setting is a JSON object, name -> command, each command written like TRIAGE_AGENT_COMMAND
(same placeholders, `stub` for the demo agent):

    TRIAGE_AGENT_PROFILES='{"sonnet": "claude-agent --model sonnet {workspace}",
                            "opus": "claude-agent --model opus {workspace}"}'

JSON rather than `name=command;…` because commands hold `;`, `=` and quotes. Names are short
slugs (letters, digits, `-`, `_`, `.`), since they are stored on incidents and executions.
The empty name is the default agent (TRIAGE_AGENT_COMMAND) and cannot be redefined.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_PROFILE = ""


def parse_profiles(text: str, *, setting: str = "TRIAGE_AGENT_PROFILES") -> dict[str, str]:
    """name -> command from the setting's text ("" or blank: none). Raises ImproperlyConfigured
    naming the setting, and the profile when one is at fault."""
    if not text or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ImproperlyConfigured(f"{setting} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ImproperlyConfigured(f"{setting} must be a JSON object of name -> command")
    profiles = {}
    for name, command in document.items():
        if not PROFILE_NAME.match(name):
            raise ImproperlyConfigured(
                f"{setting}: profile name {name!r} must be 1-64 letters, digits, '-', '_' or '.'"
            )
        if not isinstance(command, str) or not command.strip():
            raise ImproperlyConfigured(f"{setting}: profile {name!r} needs a non-empty command")
        profiles[name] = command.strip()
    return profiles


def agent_profiles() -> dict[str, str]:
    """The configured profiles (settings.TRIAGE_AGENT_PROFILES, parsed)."""
    return parse_profiles(getattr(settings, "TRIAGE_AGENT_PROFILES", ""))
