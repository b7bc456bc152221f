"""What a protocol declares about consent, amendments and withdrawal, read from its definition.

Pure functions of a protocol definition (``trials/protocol.py`` validates the keys): the
consent form versions, oldest first, with their optional items; the amendment in force and the
consent versions it asks to re-consent; the visits each withdrawal level ends.
"""
from __future__ import annotations


def consent_versions(definition: dict) -> list[dict]:
    """The consent form versions the protocol declares, oldest first ([] when none)."""
    return definition.get("consent", {}).get("versions", [])


def consent_version(definition: dict, code: str) -> dict | None:
    return next((v for v in consent_versions(definition) if v["code"] == code), None)


def is_newer(definition: dict, code: str, than: str) -> bool:
    """Whether consent version ``code`` comes after ``than`` in the protocol's list."""
    order = [v["code"] for v in consent_versions(definition)]
    return code in order and (than not in order or order.index(code) > order.index(than))


def current_amendment(definition: dict) -> dict | None:
    """The amendment that introduced this protocol version (``amendments[].protocol_version``
    equal to the file's ``version``), None for a version no amendment introduced."""
    return next((a for a in definition.get("amendments", [])
                 if a["protocol_version"] == definition.get("version")), None)


def consent_in_force(definition: dict) -> str | None:
    """The consent form version in force under this protocol version: the current amendment's,
    else the newest declared; None when the protocol declares none."""
    amendment = current_amendment(definition)
    if amendment is not None:
        return amendment["consent_version"]
    versions = consent_versions(definition)
    return versions[-1]["code"] if versions else None


def reconsent_from(definition: dict) -> list[str]:
    """The consent versions whose participants must re-consent under this protocol version."""
    amendment = current_amendment(definition)
    return list(amendment.get("reconsent", [])) if amendment else []


def withdrawal_rules(definition: dict) -> dict:
    """The protocol's ``withdrawal`` section ({} when it has none)."""
    return definition.get("withdrawal", {})
