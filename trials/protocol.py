"""Reading and validating protocol files.

A trial is described by one YAML file in ``trials/protocols/``. This module turns such a file
into a checked Python dict, or refuses it with every problem found, each naming the file, the
path inside it (``crfs[3].fields[2].type``) and what is wrong. Nothing here touches the
database: ``trials.services.load_protocol`` stores what this module accepts.

Two layers of checks:
- a JSON Schema (``SCHEMA``) for shape and types, so unknown keys and unknown field types are
  caught with their location;
- semantic checks JSON Schema cannot express: duplicate codes, windows that end before they
  start, an allocation ratio that disagrees with the arms, references to unknown CRFs, fields,
  arms, anchors or events, block sizes that are not multiples of the ratio's sum, anchors and
  events read from fields that are not dates, arm-specific visits in a blinded trial (the
  schedule would reveal the arm), repetitions with no end (no ``until`` and no
  ``trial.follow_up_months``), expressions (``checks``, ``show_if``, ``required_if``;
  ``trials/expressions.py``) with a syntax error, an unknown name or a type mismatch.

Texts shown to users (``TRANSLATABLE_KEYS``) may be given in each of the file's ``languages``;
they are checked first (``_language_problems``), then the shape and the semantics are checked on
the texts of the first language. ``localise`` gives a stored definition as a reader of one
language sees it, without the author's ``note``s (docs/protocol-files.md).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from . import expressions

FORMAT_VERSION = 1

FIELD_TYPES = ["integer", "decimal", "date", "choice", "multichoice", "yesno", "text", "term",
               "group"]
# Statuses a protocol may give a randomised participant (patients.models.Status), in rank
# order: a participant takes the highest their recorded anchors and events give.
PARTICIPANT_STATUSES = ("on_treatment", "follow_up", "completed", "withdrawn", "dead")
BUILTIN_ANCHORS = ["randomisation"]
# How an eligibility criterion may follow from a source field (``eligibility[].derive``), and
# the field types each rule reads (crfs/eligibility.py applies them).
CRITERION_RULES = {
    "age_at_least": ("date", "integer"),   # date of birth, or year of birth
    "at_least": ("integer", "decimal"),
    "at_most": ("integer", "decimal"),
}
RESERVED_VISIT_CODES = ["unscheduled"]  # scheduling.services.UNSCHEDULED
# CDISC's missing-data codes a field may allow (``missing.codes``; crfs/missing_data.py):
# not done, not applicable, unknown.
MISSING_CODES = ("ND", "NA", "UNK")
# Field types a code makes no sense on: a group is answered by its rows (code its fields).
NO_MISSING_CODES = ("group",)
# The keys whose text is shown to users: each is a plain string in a one-language protocol, or
# a mapping with exactly the protocol's ``languages`` (``{en: "Tumour grade", fr: "Grade
# tumoral"}``). Everything else (codes, ``source``, ``note``...) stays one plain string; ``note``
# is for the protocol's author and never shown (``localise`` drops it).
TRANSLATABLE_KEYS = ("label", "text", "help", "description", "message", "unit", "title")
DEFAULT_LANGUAGES = ("en",)
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$"

_code = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "maxLength": 64}
_text = {"type": "string", "minLength": 1}
_choice = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "label"],
    "properties": {"code": {"type": ["string", "integer"]}, "label": _text,
                   "note": {"type": "string"}},
}
_expression = {"type": "string", "minLength": 1}  # trials/expressions.py
_condition = {
    "type": "object",
    "additionalProperties": False,
    "required": ["field"],
    "properties": {
        "field": _code,
        "equals": {},
        "in": {"type": "array", "minItems": 1},
    },
    "oneOf": [{"required": ["equals"]}, {"required": ["in"]}],
}
# Where a value is read from: a field of a CRF (stratification factors, anchors, events).
_crf_field = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crf", "field"],
    "properties": {"crf": _code, "field": _code},
}
_duration = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "days": {"type": "integer"},
        "months": {"type": "integer"},
    },
    "minProperties": 1,
}
# Time-to-event endpoints (OS, PFS, TTP): what counts as the event, when a participant without
# it is censored, up to which horizon, and the landmark rates reported with their exact interval.
ENDPOINT_ORIGINS = ["randomisation"]
_event_source = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crf", "field"],
    "properties": {
        "crf": _code,
        "field": _code,
        "when": _condition,                     # a value of another field of the same CRF
        "arms": {"type": "array", "minItems": 1, "items": _code},  # counts only in these arms
        "label": _text,                         # the reason shown for such an event
    },
}
# A protocol event as an endpoint's event: every record that shows it (its ``source`` and its
# ``shown_by``, crfs/sources.py), so an endpoint cannot miss one of them.
_event_reference = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event"],
    "properties": {
        "event": _code,
        "arms": {"type": "array", "minItems": 1, "items": _code},
    },
}
# Another record that shows a protocol event (crfs/agreement.py): a date field of a CRF, read
# when ``when`` holds (row by row for a group's field). ``expected``: the event's own record is
# not enough without this one (a death needs its end-of-study form); ``expected_when``: only when
# the condition holds on the event's own record (a radiological progression needs its scan).
_shown_by = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crf", "field", "label"],
    "properties": {
        "crf": _code,
        "field": _code,
        "when": _condition,
        "label": _text,
        "expected": {"type": "boolean"},
        "expected_when": _condition,
        "note": {"type": "string"},
    },
    "not": {"required": ["expected", "expected_when"]},
}
# A date that shows the participant was followed (alive, free of progression), counted only when
# its ``when`` holds on the same CRF (the last-news form's contact date if the vital status is
# alive).
_evidence_source = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crf", "field"],
    "properties": {"crf": _code, "field": _code, "when": _condition},
}
_endpoint = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "label", "origin", "events", "censoring"],
    "properties": {
        "code": _code,
        "label": _text,
        "origin": {"enum": ENDPOINT_ORIGINS},
        "events": {"type": "array", "minItems": 1,
                   "items": {"oneOf": [_event_source, _event_reference]}},
        "censoring": {
            "type": "object",
            "additionalProperties": False,
            "required": ["last_evidence"],
            "properties": {
                # The latest of these dates is the censoring date of a participant without
                # the event: "visits_done" (any visit recorded as done) or a date field.
                "last_evidence": {"type": "array", "minItems": 1, "items": {
                    "oneOf": [{"const": "visits_done"}, _evidence_source]}},
                "note": {"type": "string"},
            },
        },
        "horizon_months": {"type": "integer", "minimum": 1},
        # The scale of the Kaplan-Meier band the median's interval is read from: "log" (R's
        # survfit default, when absent) or "log-log" (SAS's default).
        "ci_transform": {"enum": ["log", "log-log"]},
        # The factors the log-rank test and the Cox model are stratified by ("site" when the
        # randomisation is stratified by site, or a stratification factor's code); absent: the
        # randomisation's own strata; []: unstratified.
        "strata": {"type": "array", "items": _code, "uniqueItems": True},
        "analysis_note": {"type": "string"},    # why this analysis, in the protocol's words
        # Figures the protocol's sources publish for this endpoint, in months (a median, a
        # follow-up): a horizon shorter than one of them could not show it, so loading warns
        # (``protocol_warnings``).
        "published": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["months", "what", "source"],
            "properties": {"months": {"type": "number", "exclusiveMinimum": 0},
                           "what": _text, "source": {"type": "string", "minLength": 1}},
        }},
        "landmarks": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["months", "level"],
            "properties": {
                "months": {"type": "number", "exclusiveMinimum": 0},
                "level": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
                # Follow-up ending this many days before the landmark still reaches it (the
                # assessment's visit window): otherwise a participant seen at the 24-month
                # visit a few days early would not be evaluable at 24 months.
                "window_days": {"type": "integer", "minimum": 0},
                "primary": {"type": "boolean"},
                "source": {"type": "string"},
            },
        }},
        "primary": {"type": "boolean"},
        "source": {"type": "string"},
        "note": {"type": "string"},
    },
}
_safety = {
    # Where the outcomes report reads adverse events (CTCAE grade per row of a group) and the
    # post-operative morbidity grade (Clavien-Dindo, a derived worst grade).
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "adverse_events": {
            "type": "object",
            "additionalProperties": False,
            "required": ["crf", "group", "grade"],
            "properties": {"crf": _code, "group": _code, "grade": _code,
                           "source": {"type": "string"}},
        },
        "surgical_morbidity": {
            "type": "object",
            "additionalProperties": False,
            "required": ["crf", "field"],
            "properties": {"crf": _code, "field": _code, "source": {"type": "string"}},
        },
        # Serious adverse event reporting (safety app, docs/safety.md): the study products the
        # investigator and the sponsor assess causality for, each with its reference safety
        # information (RSI: the SmPC or investigator's brochure, and its version) ...
        "products": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["code", "label", "reference_safety_information"],
                "properties": {
                    "code": _code, "label": _text, "blinded": {"type": "boolean"},
                    "reference_safety_information": {
                        "type": "object", "additionalProperties": False,
                        "required": ["document", "version"],
                        "properties": {"document": _text, "version": _text,
                                       "source": {"type": "string"}}},
                    "source": {"type": "string"},
                },
            },
        },
        # ... and the records that open an SAE report: a field of a CRF (``group.field`` for a
        # row of a group) equal to ``equals`` or, without it, filled in.
        "sae_triggers": {
            "type": "array",
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["crf", "field"],
                "properties": {
                    "crf": _code, "field": _code, "equals": {},
                    "criterion": {"enum": ["death", "life_threatening", "hospitalisation",
                                           "disability", "congenital_anomaly",
                                           "medically_important"]},
                    "term_field": _code, "term": _text, "onset_field": _code,
                    # Not when this other field of the record (same group) has this value.
                    "unless": {"type": "object", "additionalProperties": False,
                               "required": ["field", "equals"],
                               "properties": {"field": _code, "equals": {}}},
                    "source": {"type": "string"},
                },
            },
        },
    },
}
# Interim analyses the data monitoring committee reviews (outcomes/interim.py): at a fraction of
# the planned information (events of an endpoint, or participants), the endpoint's log-rank
# statistic against a two-sided efficacy boundary. ``information.planned`` null: the protocol
# does not state it (the fraction reached is then not computable, and the report says so).
# Boundary: Lan-DeMets alpha spending (``alpha``: the overall two-sided level), or a fixed
# boundary given as ``z`` or as a two-sided nominal ``p`` (Haybittle-Peto: z 3, p 0.001).
INTERIM_BOUNDARIES = ("lan_demets_obrien_fleming", "lan_demets_pocock", "haybittle_peto",
                      "fixed")
_interim = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "endpoint", "information_fraction", "information", "boundary"],
    "properties": {
        "code": _code,
        "label": _text,
        "endpoint": _code,
        "information_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "information": {
            "type": "object", "additionalProperties": False, "required": ["measure", "planned"],
            "properties": {"measure": {"enum": ["events", "participants"]},
                           "planned": {"type": ["integer", "null"], "minimum": 1}},
        },
        "boundary": {
            "type": "object", "additionalProperties": False, "required": ["method"],
            "properties": {
                "method": {"enum": list(INTERIM_BOUNDARIES)},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
                "z": {"type": "number", "exclusiveMinimum": 0},
                "p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
        },
        "source": {"type": "string"},
        "note": _text,
    },
}

_monitoring = {
    # The monitoring plan's source data verification (crfs/verification.py, docs/monitoring.md):
    # every completed form (``all``), the key data only (``key_data``: forms, or fields of
    # them), or every form of a sample of each site's participants (``sample``: the first
    # ``first_per_site`` registered, and a ``fraction`` of the others drawn by study ID).
    "type": "object",
    "additionalProperties": False,
    "required": ["sdv"],
    "properties": {
        "sdv": {"enum": ["all", "key_data", "sample"]},
        "key_data": {
            "type": "array", "minItems": 1,
            "items": {"type": "object", "additionalProperties": False, "required": ["crf"],
                      "properties": {"crf": _code,
                                     "fields": {"type": "array", "minItems": 1,
                                                "items": _code}}},
        },
        "sample": {
            "type": "object", "additionalProperties": False,
            "required": ["first_per_site", "fraction"],
            "properties": {"first_per_site": {"type": "integer", "minimum": 0},
                           "fraction": {"type": "number", "minimum": 0, "maximum": 1}},
        },
        "source": {"type": "string"},
    },
    "allOf": [
        {"if": {"properties": {"sdv": {"const": "key_data"}}},
         "then": {"required": ["key_data"]}},
        {"if": {"properties": {"sdv": {"const": "sample"}}},
         "then": {"required": ["sample"]}},
    ],
}
_supply = {
    # Investigational product supply (randomisation/supply, docs/supply.md). ``kits: false``
    # declares a trial without product kits (open label, standard care). With kits, the kit
    # list is apart from the allocation list; kits are dispensed at ``dispensing.visits``
    # and the kit given is recorded in ``dispensing.crf``'s ``field`` (checked against the kit
    # assigned); ``given_field``, a yes/no field, says whether the product was given at all.
    "type": "object",
    "additionalProperties": False,
    "required": ["kits"],
    "properties": {
        "kits": {"type": "boolean"},
        "kit_number_length": {"type": "integer", "minimum": 4, "maximum": 16},
        "dispensing": {
            "type": "object", "additionalProperties": False,
            "required": ["visits", "crf", "field"],
            "properties": {"visits": {"type": "array", "minItems": 1, "items": _code},
                           "crf": _code, "field": _code, "given_field": _code},
        },
        # Resupply, counted in visits: a site's usable stock of an arm must cover the arm's
        # dispensing visits due there within ``lead_time_days`` plus ``trigger_visits`` more;
        # when it no longer does, a request for ``resupply_visits`` more is raised.
        "resupply": {
            "type": "object", "additionalProperties": False,
            "required": ["lead_time_days", "trigger_visits", "resupply_visits"],
            "properties": {"lead_time_days": {"type": "integer", "minimum": 0, "maximum": 365},
                           "trigger_visits": {"type": "integer", "minimum": 1, "maximum": 100},
                           "resupply_visits": {"type": "integer", "minimum": 1,
                                               "maximum": 1000}},
        },
        "depots": {
            "type": "array", "minItems": 1,
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["code", "name", "email"],
                      "properties": {"code": _code, "name": _text,
                                     "email": {"type": "string", "format": "email"},
                                     "placeholder": {"type": "boolean"}}},
        },
        "note": {"type": "string"},
        "source": {"type": "string"},
    },
    "if": {"properties": {"kits": {"const": True}}},
    "then": {"required": ["kit_number_length", "dispensing", "resupply", "depots"]},
}
_field: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "label", "type"],
    "properties": {
        "code": _code,
        "label": _text,
        "type": {"enum": FIELD_TYPES},
        "help": {"type": "string"},
        "unit": {"type": "string"},
        "required": {"type": "boolean"},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "decimals": {"type": "integer", "minimum": 0, "maximum": 6},
        "max_length": {"type": "integer", "minimum": 1},
        "choices": {"type": "array", "minItems": 1, "items": _choice},
        # Expressions (trials/expressions.py): shown / required to complete only when it holds.
        "show_if": _expression,
        "required_if": _expression,
        "not_in_future": {"type": "boolean"},
        "fields": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/field"}},
        "min_rows": {"type": "integer", "minimum": 0},
        "max_rows": {"type": "integer", "minimum": 1},
        "derived": {"type": "string"},
        "identifying": {"type": "boolean"},
        # type term: a term chosen from a shipped terminology (trials/terminology.py), e.g.
        # ctcae-4.03; grade_field: the sibling choice field holding its grade, whose offered
        # grades follow the term's definitions.
        "terminology": {"type": "string"},
        "grade_field": _code,
        # A missing-data code instead of a value (crfs/missing_data.py), with a reason asked
        # (required, optional) or not (absent).
        "missing": {"type": "object", "additionalProperties": False, "required": ["codes"],
                    "properties": {"codes": {"type": "array", "minItems": 1,
                                             "uniqueItems": True, "items": {"type": "string"}},
                                   "reason": {"enum": ["required", "optional"]}}},
        # A date known to the month (or the year) only; ``impute``: how an analysis dates it.
        "partial": {"type": "object", "additionalProperties": False, "required": ["precision"],
                    "properties": {"precision": {"enum": ["month", "year"]},
                                   "impute": {"enum": ["first_day", "middle", "last_day"]}}},
        "note": {"type": "string"},
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": "term"}}},
         "then": {"required": ["terminology"]}},
        {"if": {"properties": {"type": {"enum": ["choice", "multichoice"]}}},
         "then": {"required": ["choices"]}},
        {"if": {"properties": {"type": {"const": "group"}}},
         "then": {"required": ["fields"]}},
    ],
}

_consent = {
    # The consent form versions, oldest first, each with its optional items (answered yes or
    # no by the participant: biological samples, re-use of data…). patients/services.py
    # (``record_consent``) refuses a version or an item not declared here.
    "type": "object",
    "additionalProperties": False,
    "required": ["versions"],
    "properties": {
        "versions": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["code", "date", "label"],
            "properties": {
                "code": _code,
                "date": {"type": "string",
                         "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "label": _text,
                "optional_items": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["code", "label"],
                    "properties": {"code": _code, "label": _text,
                                   "source": {"type": "string"}},
                }},
                "source": {"type": "string"},
            },
        }},
        "note": {"type": "string"},
    },
}
_amendment = {
    # An amendment: the protocol version it introduces, the consent form version that goes
    # with it, and the earlier consent versions whose participants must re-consent
    # (patients/selectors.py, ``reconsent_worklist``).
    "type": "object",
    "additionalProperties": False,
    "required": ["protocol_version", "consent_version"],
    "properties": {
        "protocol_version": {"type": "string", "minLength": 1, "maxLength": 32},
        "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "consent_version": _code,
        "reconsent": {"type": "array", "items": _code},
        "note": {"type": "string"},
    },
}
_withdrawal = {
    # How the withdrawal levels (patients/models.py, ``WithdrawalLevel``) act on the schedule:
    # ``treatment_event``, the event a withdrawal from study treatment (or more) counts as;
    # ``treatment_visits``, the visits of study treatment that end with it;
    # ``vital_status_visits``, the visits that go on when the participant stops visits but
    # allows vital-status follow-up; ``data_after_consent_withdrawal``: data collected before a
    # withdrawal of consent is kept ("kept", the regulations' default) unless it says otherwise.
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "treatment_event": _code,
        "treatment_visits": {"type": "array", "items": _code},
        "vital_status_visits": {"type": "array", "items": _code},
        "data_collected_before_withdrawal": {"enum": ["kept", "not_used"]},
        "note": {"type": "string"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"field": _field},
    "type": "object",
    "additionalProperties": False,
    "required": ["format", "trial", "version", "sites", "arms", "allocation_ratio",
                 "randomisation", "eligibility", "visits", "crfs"],
    "properties": {
        "format": {"const": FORMAT_VERSION},
        # The languages of the protocol's texts, the first the fallback (see ``localise``).
        "languages": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "string", "pattern": LANGUAGE_PATTERN}},
        "version": {"type": "string", "minLength": 1, "maxLength": 32},
        "amendment_note": {"type": "string"},
        "consent": _consent,
        "amendments": {"type": "array", "items": _amendment},
        "withdrawal": _withdrawal,
        "trial": {
            "type": "object",
            "additionalProperties": False,
            "required": ["slug", "title", "short_title", "phase", "design", "masking"],
            "properties": {
                "slug": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$", "maxLength": 50},
                "title": _text,
                "short_title": {"type": "string", "minLength": 1, "maxLength": 80},
                "registry_id": {"type": ["string", "null"]},
                "sponsor": {"type": "string"},
                "phase": {"enum": ["I", "I/II", "II", "II/III", "III", "IV"]},
                "design": _text,
                "masking": {"enum": ["open", "single-blind", "double-blind"]},
                # The planned number of participants; null (or absent) when the source does
                # not state it: then no target and no projection are shown, never a guess.
                "target_enrolment": {"type": ["integer", "null"], "minimum": 1},
                "target_enrolment_note": {"type": "string"},
                "follow_up_months": {"type": "integer", "minimum": 1},
                "source": {"type": "string"},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "sites": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "name"],
                "properties": {
                    "code": _code,
                    "name": _text,
                    "city": {"type": "string"},
                    "country": {"type": "string"},
                    "placeholder": {"type": "boolean"},
                },
            },
        },
        "arms": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "ratio"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    "description": {"type": "string"},
                    "note": {"type": "string"},
                    "ratio": {"type": "integer", "minimum": 1},
                },
            },
        },
        "allocation_ratio": {"type": "string", "pattern": r"^\d+(:\d+)+$"},
        "randomisation": {
            "type": "object",
            "additionalProperties": False,
            "required": ["method"],
            "properties": {
                "method": {"enum": ["permuted_blocks", "minimisation"]},
                "block_sizes": {"type": "array", "minItems": 1,
                                "items": {"type": "integer", "minimum": 2}},
                "stratify_by_site": {"type": "boolean"},
                "slots_per_stratum": {"type": "integer", "minimum": 1},
                "low_slot_threshold": {"type": "integer", "minimum": 0},
                "minimisation": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["probability"],
                    "properties": {
                        "probability": {"type": "number", "exclusiveMinimum": 0.5,
                                        "maximum": 1},
                        "weights": {"type": "object",
                                    "additionalProperties": {"type": "number",
                                                             "exclusiveMinimum": 0}},
                    },
                },
                "kit_code_length": {"type": "integer", "minimum": 4, "maximum": 16},
                "notes": {"type": "string"},
            },
        },
        "stratification_factors": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "levels", "source"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    "note": {"type": "string"},
                    "source": _crf_field,
                    "levels": {
                        "type": "array",
                        "minItems": 2,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["code", "label", "values"],
                            "properties": {
                                "code": _code,
                                "label": _text,
                                "values": {"type": "array", "minItems": 1},
                            },
                        },
                    },
                },
            },
        },
        "eligibility": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "kind", "text"],
                "properties": {
                    "code": _code,
                    "kind": {"enum": ["inclusion", "exclusion"]},
                    "text": _text,
                    "source": {"type": "string"},
                    "note": {"type": "string"},
                    # How the answer follows from a source value of the eligibility CRF
                    # (crfs/eligibility.py): a blank answer is derived, a contradicting one
                    # refused. age_at_least: ``from`` a date of birth (date) or a year of
                    # birth (integer), ``at`` the date field the age is taken at, ``value``
                    # the years; at_least / at_most: ``from`` a number field, ``value`` the
                    # limit, inclusive.
                    "derive": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["rule", "from", "value"],
                        "properties": {
                            "rule": {"enum": list(CRITERION_RULES)},
                            "from": _code,
                            "at": _code,
                            "value": {"type": "number"},
                            "note": {"type": "string"},
                        },
                    },
                },
            },
        },
        # An investigator of the participant's site confirms eligibility with an e-signature
        # before randomisation (crfs.services.confirm_eligibility).
        "eligibility_confirmation": {
            "type": "object",
            "additionalProperties": False,
            "required": ["required"],
            "properties": {
                "required": {"type": "boolean"},
                "source": {"type": "string"},
            },
        },
        # The screening log's reasons for non-inclusion, the day screening opened, and
        # whether a screen failure may be screened again (patients/screening.py).
        "screening": {
            "type": "object",
            "additionalProperties": False,
            "required": ["opened_on", "opened_on_source", "rescreening_allowed",
                         "rescreening_source", "non_inclusion_reasons"],
            "properties": {
                "opened_on": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "opened_on_source": _text,
                "rescreening_allowed": {"type": "boolean"},
                "rescreening_source": _text,
                "non_inclusion_reasons": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["code", "label", "source"],
                        "properties": {"code": _code, "label": _text, "source": _text},
                    },
                },
            },
        },
        "anchors": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "source"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    "source": _crf_field,
                    # The participant's status once this date is recorded (on treatment).
                    "participant_status": {"enum": list(PARTICIPANT_STATUSES)},
                },
            },
        },
        "events": {
            # Clinical events that end repeating visits (``visits[].repeat.until_event``), each
            # read from a date field of a CRF. ``ends_all_visits``: once the event's CRF is
            # completed, no visit after its date takes place (death, leaving the study).
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "source"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    "source": _crf_field,
                    # Other records that show the event: the endpoints take the earliest
                    # date among all, and a disagreement raises a query (crfs/agreement.py).
                    "shown_by": {"type": "array", "items": _shown_by},
                    "ends_all_visits": {"type": "boolean"},
                    # The participant's status once the event's CRF is completed: a status, or
                    # one read from a choice field of that CRF (end of study: completed,
                    # withdrawn, dead by the reason given).
                    "participant_status": {"oneOf": [
                        {"enum": list(PARTICIPANT_STATUSES)},
                        {"type": "object", "additionalProperties": False,
                         "required": ["field", "values", "otherwise"],
                         "properties": {
                             "field": {"type": "string"},
                             "values": {"type": "object", "additionalProperties": {
                                 "enum": list(PARTICIPANT_STATUSES)}},
                             "otherwise": {"enum": list(PARTICIPANT_STATUSES)},
                         }},
                    ]},
                    "note": {"type": "string"},
                },
            },
        },
        "endpoints": {"type": "array", "items": _endpoint},
        "safety": _safety,
        "supply": _supply,
        "monitoring": _monitoring,
        "interim_analyses": {"type": "array", "items": _interim},
        "visits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "anchor", "offset", "window", "crfs"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    # an anchor or an event, or several: the first one dated
                    "anchor": {"oneOf": [_code, {"type": "array", "minItems": 1,
                                                 "items": _code}]},
                    "offset": _duration,
                    "window": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["start", "end"],
                        "properties": {"start": {"type": "integer"},
                                       "end": {"type": "integer"}},
                    },
                    "arms": {"type": "array", "minItems": 1, "items": _code},
                    "crfs": {"type": "array", "items": _code},
                    "repeat": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["every"],
                        "properties": {
                            "every": _duration,
                            "until": _duration,
                            "until_event": {"type": "array", "minItems": 1,
                                            "items": _code},
                        },
                        "anyOf": [{"required": ["until"]}, {"required": ["until_event"]}],
                    },
                    "source": {"type": "string"},
                    "window_note": {"type": "string"},
                    "note": {"type": "string"},
                },
            },
        },
        "crfs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label", "fields"],
                "properties": {
                    "code": _code,
                    "label": _text,
                    "description": {"type": "string"},
                    "note": {"type": "string"},
                    "repeatable": {"type": "boolean"},
                    # The published scoring its items follow: the participant page shows the
                    # scores of the latest form so scored.
                    "scoring": {"enum": ["eortc_qlq_c30"]},
                    # RECIST re-baselining: for participants of ``arms``, the first assessment
                    # dated on or after ``after_anchor`` is the baseline of the later ones
                    # (crfs/services.py, ``rebaseline_date``).
                    "rebaseline": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["arms", "after_anchor"],
                        "properties": {"arms": {"type": "array", "minItems": 1, "items": _code},
                                       "after_anchor": _code,
                                       "source": {"type": "string"}},
                    },
                    "fields": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/field"}},
                    # Edit checks in the expression language (trials/expressions.py,
                    # docs/protocol-files.md): ``expect`` must hold when ``when`` does.
                    "checks": {"type": "array", "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["code", "expect", "message"],
                        "properties": {
                            "code": _code,
                            "when": _expression,
                            "expect": _expression,
                            "field": {"type": "string"},
                            "severity": {"enum": ["hard", "soft"]},
                            "message": _text,
                            "source": {"type": "string"},
                            "note": {"type": "string"},
                        },
                    }},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class ProtocolProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top)'}: {self.message}"


class ProtocolError(Exception):
    """A protocol file was refused. ``problems`` lists every reason, each with its location."""

    def __init__(self, source: str, problems: list[ProtocolProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: protocol refused ({len(problems)} problem(s)):\n{lines}")


def _json_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_protocol_file(path: str | Path) -> dict[str, Any]:
    """Parse and validate a protocol file; return the definition or raise ``ProtocolError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(str(path), [ProtocolProblem("", f"cannot read file: {exc.strerror}")])
    return parse_protocol(text, source=str(path))


def parse_protocol(text: str, *, source: str = "<protocol>") -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProtocolError(source, [ProtocolProblem(where, f"not valid YAML: {exc}")])
    if not isinstance(data, dict):
        raise ProtocolError(source, [ProtocolProblem("", "a protocol must be a mapping at the top")])
    problems = validate_definition(data)
    if problems:
        raise ProtocolError(source, problems)
    return data


def validate_definition(data: dict[str, Any]) -> list[ProtocolProblem]:
    problems = _language_problems(data)
    if problems:
        return problems
    # The shape and the semantic checks read the texts in the first language: a translated
    # text has already been checked to have every language (``_language_problems``).
    data = _resolve(data, languages_of(data)[0], keep_notes=True)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = [
        ProtocolProblem(_json_path(err.absolute_path), _schema_message(err))
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        # Semantic checks assume the shape is right.
        return problems
    return _semantic_problems(data)


def languages_of(definition: dict[str, Any]) -> list[str]:
    """The protocol's languages, the first being the fallback; ``[en]`` when not declared."""
    declared = definition.get("languages")
    return list(declared) if isinstance(declared, list) and declared else list(DEFAULT_LANGUAGES)


def _language_problems(data: dict[str, Any]) -> list[ProtocolProblem]:
    """Every translatable text has exactly the declared languages, each a non-empty string;
    a plain string only in a one-language protocol."""
    declared = data.get("languages", list(DEFAULT_LANGUAGES))
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["languages"])
    problems = [ProtocolProblem(_json_path(["languages", *err.absolute_path]), _schema_message(err))
                for err in validator.iter_errors(declared)]
    if problems:
        return problems
    listed = ", ".join(declared)

    def text(value: Any, path: str) -> None:
        if isinstance(value, str) and len(declared) > 1:
            problems.append(ProtocolProblem(
                path, f"a plain string where the protocol declares several languages "
                      f"({listed}): give one text per language"))
        elif isinstance(value, dict):
            for language in declared:
                given = value.get(language)
                if not isinstance(given, str) or not given.strip():
                    problems.append(ProtocolProblem(path, f"no {language!r} text"))
            for language in value:
                if language not in declared:
                    problems.append(ProtocolProblem(
                        f"{path}.{language}",
                        f"{language!r} is not a language of this protocol ({listed})"))

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}" if path else str(key)
                if key in TRANSLATABLE_KEYS and isinstance(value, (str, dict)):
                    text(value, here)
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk({k: v for k, v in data.items() if k != "languages"}, "")
    return problems


def _language_for(wanted: str | None, languages: list[str]) -> str:
    """The protocol language to show a reader of ``wanted`` (a Django language code such as
    ``fr`` or ``en-gb``): that language, else its base language, else the protocol's first."""
    if wanted:
        wanted = wanted.lower()
        for candidate in (wanted, wanted.split("-")[0]):
            if candidate in languages:
                return candidate
    return languages[0]


def _resolve(node: Any, language: str, *, first: str | None = None, keep_notes: bool) -> Any:
    """``node`` with each translatable mapping replaced by its ``language`` text (the
    ``first`` language's standing in for a missing one, in a hand-edited stored definition)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "note" and not keep_notes and isinstance(value, str):
                continue
            if key in TRANSLATABLE_KEYS and isinstance(value, dict):
                out[key] = (value.get(language) or value.get(first or language)
                            or next(iter(value.values()), ""))
            else:
                out[key] = _resolve(value, language, first=first, keep_notes=keep_notes)
        return out
    if isinstance(node, list):
        return [_resolve(item, language, first=first, keep_notes=keep_notes) for item in node]
    return node


def localise(definition: dict[str, Any], language: str | None) -> dict[str, Any]:
    """A copy of a stored definition as a reader of ``language`` sees it: every translatable
    text in that language (or the protocol's first when it has no such language), and the
    author's ``note`` keys left out, so no page, PDF or API answer can show them. Codes never
    change with the language. The copy is itself a valid one-language definition: its
    ``languages`` is the one shown."""
    if not definition:
        return {}
    languages = languages_of(definition)
    chosen = _language_for(language, languages)
    shown = _resolve(definition, chosen, first=languages[0], keep_notes=False)
    if "languages" in shown:
        shown["languages"] = [chosen]
    return shown


# What a value must be, added to a schema error at that path where the bare message (e.g.
# "0 is less than the minimum of 1") would not say what the key means.
_EXPECTED = {
    "trial.target_enrolment": "the planned number of participants, a whole number of at least "
                              "1, or null when the protocol does not state it",
}


def _schema_message(err: jsonschema.ValidationError) -> str:
    expected = _EXPECTED.get(_json_path(err.absolute_path))
    if expected and err.validator in ("type", "minimum"):
        return f"{err.instance!r}: must be {expected}"
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return f"unknown key(s): {', '.join(extra)}"
    if err.validator == "enum":
        allowed = ", ".join(map(str, err.validator_value))
        return f"{err.instance!r} is not one of: {allowed}"
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    return err.message


def _duplicates(items: list[dict], path: str, key: str = "code") -> list[ProtocolProblem]:
    counts = Counter(str(item[key]) for item in items)
    problems = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        value = str(item[key])
        if counts[value] > 1 and value in seen:
            problems.append(ProtocolProblem(f"{path}[{i}].{key}", f"duplicate {key} {value!r}"))
        seen.add(value)
    return problems


def _field_problems(fields: list[dict], path: str, in_row: bool = False
                    ) -> list[ProtocolProblem]:
    problems = _duplicates(fields, path)
    for i, field in enumerate(fields):
        here = f"{path}[{i}]"
        if "min" in field and "max" in field and field["min"] > field["max"]:
            problems.append(ProtocolProblem(f"{here}.max",
                                            f"max {field['max']} is below min {field['min']}"))
        if field.get("choices"):
            problems += _duplicates(field["choices"], f"{here}.choices")
        if field["type"] not in ("choice", "multichoice") and "choices" in field:
            problems.append(ProtocolProblem(f"{here}.choices",
                                            f"choices given for a field of type {field['type']}"))
        problems += _term_problems(field, fields, here)
        problems += _missing_data_problems(field, here)
        for key in ("show_if", "required_if"):
            problems += _display_condition_problems(field, fields, key, f"{here}.{key}", in_row)
        if field["type"] == "group":
            problems += _field_problems(field["fields"], f"{here}.fields", in_row=True)
            if field.get("min_rows", 0) > field.get("max_rows", 10**6):
                problems.append(ProtocolProblem(f"{here}.max_rows", "max_rows is below min_rows"))
    return problems


def _missing_data_problems(field: dict, here: str) -> list[ProtocolProblem]:
    """Missing-data codes: known codes only, on a field that takes a value; partial dates on
    date fields only."""
    problems = []
    if "missing" in field:
        if field["type"] in NO_MISSING_CODES:
            problems.append(ProtocolProblem(
                f"{here}.missing", f"missing-data codes make no sense on a {field['type']} "
                "(allow them on its fields)"))
        elif field.get("derived"):
            problems.append(ProtocolProblem(
                f"{here}.missing", "missing-data codes make no sense on a derived field (it is "
                "computed, never entered)"))
        for k, code in enumerate(field["missing"]["codes"]):
            if code not in MISSING_CODES:
                problems.append(ProtocolProblem(
                    f"{here}.missing.codes[{k}]", f"unknown missing-data code {code!r} "
                    f"(known: {', '.join(MISSING_CODES)})"))
    if "partial" in field and field["type"] != "date":
        problems.append(ProtocolProblem(f"{here}.partial",
                                        f"partial given for a field of type {field['type']}"))
    return problems


def _term_problems(field: dict, siblings: list[dict], here: str) -> list[ProtocolProblem]:
    from .terminology import GRADES, shipped_terminology_codes
    problems = []
    if field["type"] != "term":
        for key in ("terminology", "grade_field"):
            if key in field:
                problems.append(ProtocolProblem(f"{here}.{key}",
                                                f"{key} given for a field of type {field['type']}"))
        return problems
    known = shipped_terminology_codes()
    if field["terminology"] not in known:
        problems.append(ProtocolProblem(
            f"{here}.terminology", f"unknown terminology {field['terminology']!r} (shipped in "
            f"trials/reference/: {', '.join(known) or 'none'})"))
    if "grade_field" in field:
        grade = next((f for f in siblings if f["code"] == field["grade_field"]), None)
        if grade is None or grade["type"] != "choice":
            problems.append(ProtocolProblem(f"{here}.grade_field",
                                            f"{field['grade_field']!r} is not a choice field of "
                                            "the same form or row"))
        elif any(c["code"] not in GRADES for c in grade["choices"]):
            problems.append(ProtocolProblem(
                f"{here}.grade_field", f"the choices of {field['grade_field']!r} must be grades "
                f"{', '.join(map(str, GRADES))} (integers)"))
    return problems


def _date_field(crf: dict, path: str) -> dict | None:
    """The date field ``path`` (``field`` or ``group.field``) of ``crf``, or None."""
    fields = crf["fields"]
    if "." in path:
        group, path = path.split(".", 1)
        fields = next((f.get("fields", []) for f in fields if f["code"] == group), [])
    return next((f for f in fields if f["code"] == path and f["type"] == "date"), None)


def _expression_problem(path: str, text: str, exc: expressions.ExpressionError
                        ) -> ProtocolProblem:
    where = f" at column {exc.column}" if exc.column else ""
    return ProtocolProblem(path, f"{text!r}{where}: {exc.message}")


def _display_condition_problems(field: dict, siblings: list[dict], key: str, path: str,
                                in_row: bool) -> list[ProtocolProblem]:
    """A ``show_if`` / ``required_if`` reads the answers of its form (its row's, in a group),
    not its own."""
    text = field.get(key)
    if text is None:
        return []
    try:
        compiled = expressions.compile_expression(
            text, expressions.Scope(fields=[] if in_row else siblings,
                                    row=siblings if in_row else None, outside=False))
    except expressions.ExpressionError as exc:
        if in_row and "unknown field" in exc.message:
            exc = expressions.ExpressionError(
                exc.message.replace(" (a row's condition reads its own row)", "")
                + ": a field of a group's row depends on the fields of the same row only",
                exc.column)
        return [_expression_problem(path, text, exc)]
    if field["code"] in compiled.fields:
        return [ProtocolProblem(path, f"{text!r}: a field cannot depend on itself")]
    if field.get("required") and key == "required_if":
        return [ProtocolProblem(path, "required_if on a field that is always required")]
    if field["type"] == "group" and key == "required_if":
        return [ProtocolProblem(path, "a group's rows are required by min_rows, not "
                                "required_if")]
    return []


def _check_problems(protocol: dict, crf: dict, path: str) -> list[ProtocolProblem]:
    problems = _duplicates(crf.get("checks", []), path)
    scope = expressions.protocol_scope(protocol, crf)
    for i, check in enumerate(crf.get("checks", [])):
        try:
            expressions.compile_check(check, scope)
        except expressions.CheckDefinitionError as exc:
            text = check.get(exc.key) or ""
            problems.append(_expression_problem(f"{path}[{i}].{exc.key}", text, exc)
                            if text else ProtocolProblem(f"{path}[{i}].{exc.key}", exc.message))
    return problems


def _derive_problems(criterion: dict, fields: dict[str, dict], path: str
                     ) -> list[ProtocolProblem]:
    """A criterion's ``derive`` names fields of the eligibility CRF of the types its rule reads."""
    rule = criterion["derive"]
    problems = []
    source = fields.get(rule["from"])
    if source is None:
        problems.append(ProtocolProblem(f"{path}.from", f"unknown field {rule['from']!r} of the "
                                        "'eligibility' CRF"))
    elif rule["from"] == criterion["code"]:
        problems.append(ProtocolProblem(f"{path}.from", "a criterion cannot derive from itself"))
    elif source["type"] not in CRITERION_RULES[rule["rule"]]:
        wanted = " or ".join(CRITERION_RULES[rule["rule"]])
        problems.append(ProtocolProblem(
            f"{path}.from", f"{rule['from']!r} is a {source['type']} field; {rule['rule']} "
                            f"reads a {wanted} field"))
    if rule["rule"] == "age_at_least":
        at = fields.get(rule.get("at", ""))
        if "at" not in rule:
            problems.append(ProtocolProblem(f"{path}.at", "age_at_least needs the date field "
                                            "the age is taken at (e.g. screening_date)"))
        elif at is None or at["type"] != "date":
            problems.append(ProtocolProblem(f"{path}.at", f"{rule['at']!r} is not a date field "
                                            "of the 'eligibility' CRF"))
    elif "at" in rule:
        problems.append(ProtocolProblem(f"{path}.at", f"{rule['rule']} takes no date"))
    return problems


def _screening_problems(screening: dict | None) -> list[ProtocolProblem]:
    """The screening block: a real opening date, reasons coded once each."""
    if screening is None:
        return []
    problems = _duplicates(screening["non_inclusion_reasons"], "screening.non_inclusion_reasons")
    try:
        dt.date.fromisoformat(screening["opened_on"])
    except ValueError:
        problems.append(ProtocolProblem("screening.opened_on",
                                        f"{screening['opened_on']!r} is not a date"))
    return problems


def _semantic_problems(data: dict[str, Any]) -> list[ProtocolProblem]:
    problems: list[ProtocolProblem] = []
    for key in ("sites", "arms", "eligibility", "visits", "crfs"):
        problems += _duplicates(data[key], key)
    factors = data.get("stratification_factors", [])
    anchors = data.get("anchors", [])
    problems += _duplicates(factors, "stratification_factors")
    problems += _duplicates(anchors, "anchors")
    events = data.get("events", [])
    problems += _duplicates(events, "events")

    arms = data["arms"]
    arm_codes = {a["code"] for a in arms}
    ratio = [int(x) for x in data["allocation_ratio"].split(":")]
    arm_ratios = [a["ratio"] for a in arms]
    if ratio != arm_ratios:
        problems.append(ProtocolProblem(
            "allocation_ratio",
            f"{data['allocation_ratio']} does not match the arms' ratios "
            f"{':'.join(map(str, arm_ratios))} (in the order the arms are listed)"))
    ratio_sum = sum(arm_ratios)

    rnd = data["randomisation"]
    if rnd["method"] == "permuted_blocks":
        sizes = rnd.get("block_sizes")
        if not sizes:
            problems.append(ProtocolProblem("randomisation.block_sizes",
                                            "permuted blocks need block_sizes"))
        for i, size in enumerate(sizes or []):
            if size % ratio_sum:
                problems.append(ProtocolProblem(
                    f"randomisation.block_sizes[{i}]",
                    f"block size {size} is not a multiple of the ratio's sum {ratio_sum}"))
    if rnd["method"] == "minimisation":
        if "minimisation" not in rnd:
            problems.append(ProtocolProblem("randomisation.minimisation",
                                            "minimisation needs its probability and weights"))
        else:
            known = {f["code"] for f in factors} | ({"site"} if rnd.get("stratify_by_site") else set())
            for name in rnd["minimisation"].get("weights", {}):
                if name not in known:
                    problems.append(ProtocolProblem(f"randomisation.minimisation.weights.{name}",
                                                    f"unknown factor {name!r}"))
    supply = data.get("supply", {"kits": False})
    if supply["kits"] and "kit_code_length" in rnd:
        problems.append(ProtocolProblem(
            "randomisation.kit_code_length",
            "kit numbers come from the kit list (supply.kits): the allocation list has none"))
    elif data["trial"]["masking"] != "open" and "kit_code_length" not in rnd \
            and not supply["kits"]:
        problems.append(ProtocolProblem(
            "randomisation.kit_code_length",
            "a blinded trial needs kit numbers: give their length, or a kit list (supply)"))

    crfs = {c["code"]: c for c in data["crfs"]}
    # Eligibility is read from the CRF coded "eligibility": a yes/no question per criterion,
    # coded as the criterion (crfs/eligibility.py).
    eligibility_crf = crfs.get("eligibility")
    if eligibility_crf is None:
        problems.append(ProtocolProblem(
            "crfs", "no CRF coded 'eligibility': the criteria are answered on it"))
    else:
        questions = {f["code"]: f for f in eligibility_crf["fields"]}
        for i, criterion in enumerate(data["eligibility"]):
            field = questions.get(criterion["code"])
            if field is None or field["type"] != "yesno":
                problems.append(ProtocolProblem(
                    f"eligibility[{i}].code",
                    f"the 'eligibility' CRF has no yes/no question {criterion['code']!r}"))
            if "derive" in criterion:
                problems += _derive_problems(criterion, questions, f"eligibility[{i}].derive")
    problems += _screening_problems(data.get("screening"))
    anchor_codes = set(BUILTIN_ANCHORS) | {a["code"] for a in data.get("anchors", [])}
    for i, crf in enumerate(data["crfs"]):
        problems += _field_problems(crf["fields"], f"crfs[{i}].fields")
        problems += _check_problems(data, crf, f"crfs[{i}].checks")
        rule = crf.get("rebaseline")
        if rule:
            for j, arm in enumerate(rule["arms"]):
                if arm not in arm_codes:
                    problems.append(ProtocolProblem(f"crfs[{i}].rebaseline.arms[{j}]",
                                                    f"unknown arm {arm!r}"))
            if rule["after_anchor"] not in anchor_codes:
                problems.append(ProtocolProblem(f"crfs[{i}].rebaseline.after_anchor",
                                                f"unknown anchor {rule['after_anchor']!r}"))
            if not any(f.get("derived") in ("recist_sum_of_diameters", "recist_overall_response")
                       for f in crf["fields"]):
                problems.append(ProtocolProblem(f"crfs[{i}].rebaseline",
                                                "only a CRF with RECIST derivations re-baselines"))

    def check_source(source: dict, path: str) -> None:
        crf = crfs.get(source["crf"])
        if crf is None:
            problems.append(ProtocolProblem(f"{path}.crf", f"unknown CRF {source['crf']!r}"))
        elif source["field"] not in {f["code"] for f in crf["fields"]}:
            problems.append(ProtocolProblem(
                f"{path}.field", f"unknown field {source['field']!r} in CRF {source['crf']!r}"))

    for i, factor in enumerate(factors):
        check_source(factor["source"], f"stratification_factors[{i}].source")
        problems += _duplicates(factor["levels"], f"stratification_factors[{i}].levels")
    for i, anchor in enumerate(anchors):
        if anchor["code"] in BUILTIN_ANCHORS:
            problems.append(ProtocolProblem(f"anchors[{i}].code",
                                            f"{anchor['code']!r} is built in; do not redefine it"))
        check_source(anchor["source"], f"anchors[{i}].source")
        if not _is_date_field(crfs, anchor["source"]):
            problems.append(ProtocolProblem(f"anchors[{i}].source.field",
                                            "an anchor is a date: its source must be a date field"))
        elif (_date_field(crfs[anchor["source"]["crf"]], anchor["source"]["field"])
              or {}).get("partial"):
            problems.append(ProtocolProblem(
                f"anchors[{i}].source.field", "an anchor plans visits from its day: its source "
                "cannot be a partial date"))
    for i, event in enumerate(events):
        check_source(event["source"], f"events[{i}].source")
        problems += _shown_by_problems(event, crfs, f"events[{i}]")
        if not _is_date_field(crfs, event["source"]):
            problems.append(ProtocolProblem(f"events[{i}].source.field",
                                            "an event is dated: its source must be a date field"))
        by_field = event.get("participant_status")
        if isinstance(by_field, dict) and event["source"]["crf"] in crfs:
            here = f"events[{i}].participant_status"
            field = next((f for f in crfs[event["source"]["crf"]]["fields"]
                          if f["code"] == by_field["field"]), None)
            if field is None or field["type"] != "choice":
                problems.append(ProtocolProblem(
                    f"{here}.field", f"{by_field['field']!r} is not a choice field of CRF "
                                     f"{event['source']['crf']!r}"))
            else:
                choices = {c["code"] for c in field["choices"]}
                for value in by_field["values"]:
                    if value not in choices:
                        problems.append(ProtocolProblem(
                            f"{here}.values.{value}",
                            f"{value!r} is not a choice of {by_field['field']!r}"))

    anchor_codes = set(BUILTIN_ANCHORS) | {a["code"] for a in anchors}
    event_codes = {e["code"] for e in events}
    blinded = data["trial"]["masking"] != "open"
    for i, visit in enumerate(data["visits"]):
        here = f"visits[{i}]"
        if visit["window"]["end"] < visit["window"]["start"]:
            problems.append(ProtocolProblem(
                f"{here}.window",
                f"window ends (day {visit['window']['end']}) before it starts "
                f"(day {visit['window']['start']})"))
        if isinstance(visit["anchor"], list):
            for j, code in enumerate(visit["anchor"]):
                if code not in anchor_codes | event_codes:
                    problems.append(ProtocolProblem(f"{here}.anchor[{j}]",
                                                    f"unknown anchor or event {code!r}"))
        elif visit["anchor"] not in anchor_codes | event_codes:
            problems.append(ProtocolProblem(f"{here}.anchor",
                                            f"unknown anchor {visit['anchor']!r}"))
        if visit["code"] in RESERVED_VISIT_CODES:
            problems.append(ProtocolProblem(f"{here}.code",
                                            f"{visit['code']!r} is reserved for visits added "
                                            f"outside the schedule"))
        for j, arm in enumerate(visit.get("arms", [])):
            if arm not in arm_codes:
                problems.append(ProtocolProblem(f"{here}.arms[{j}]", f"unknown arm {arm!r}"))
        for j, crf in enumerate(visit["crfs"]):
            if crf not in crfs:
                problems.append(ProtocolProblem(f"{here}.crfs[{j}]", f"unknown CRF {crf!r}"))
        if blinded and visit.get("arms"):
            problems.append(ProtocolProblem(
                f"{here}.arms", "in a blinded trial a visit cannot depend on the arm: "
                                "the schedule would reveal it"))
        repeat = visit.get("repeat", {})
        every = repeat.get("every")
        if every and (any(v < 0 for v in every.values()) or not any(every.values())):
            problems.append(ProtocolProblem(f"{here}.repeat.every", "must be a positive interval"))
        for j, event in enumerate(repeat.get("until_event", [])):
            if event not in event_codes:
                problems.append(ProtocolProblem(
                    f"{here}.repeat.until_event[{j}]",
                    f"unknown event {event!r} (declare it under 'events')"))
        if repeat and "until" not in repeat and "follow_up_months" not in data["trial"]:
            problems.append(ProtocolProblem(
                f"{here}.repeat",
                "a repetition without 'until' runs to the end of follow-up: give "
                "trial.follow_up_months"))
    problems += _endpoint_problems(data, crfs, arm_codes)
    problems += _supply_problems(data, crfs)
    problems += _monitoring_problems(data, crfs)
    problems += _consent_problems(data)
    problems += _interim_problems(data)
    return problems


def _interim_problems(data: dict[str, Any]) -> list[ProtocolProblem]:
    """Each interim analysis names a known endpoint and a boundary complete for its method;
    the analyses of one endpoint come in increasing information fractions."""
    interims = data.get("interim_analyses", [])
    problems = _duplicates(interims, "interim_analyses")
    endpoints = {e["code"] for e in data.get("endpoints", [])}
    last: dict[str, float] = {}
    for i, interim in enumerate(interims):
        here = f"interim_analyses[{i}]"
        if interim["endpoint"] not in endpoints:
            problems.append(ProtocolProblem(
                f"{here}.endpoint", f"unknown endpoint {interim['endpoint']!r} (declare it under "
                "'endpoints')"))
        fraction = interim["information_fraction"]
        if fraction <= last.get(interim["endpoint"], 0):
            problems.append(ProtocolProblem(
                f"{here}.information_fraction",
                f"{fraction} does not follow the previous interim analysis of "
                f"{interim['endpoint']!r} ({last[interim['endpoint']]}): list them in order"))
        last[interim["endpoint"]] = max(fraction, last.get(interim["endpoint"], 0))
        boundary = interim["boundary"]
        given = sorted(k for k in ("alpha", "z", "p") if k in boundary)
        if boundary["method"].startswith("lan_demets"):
            if given != ["alpha"]:
                problems.append(ProtocolProblem(
                    f"{here}.boundary", f"{boundary['method']} spends an overall two-sided "
                    f"level: give 'alpha' (and neither 'z' nor 'p'), not {given or 'nothing'}"))
        elif given not in (["z"], ["p"]):
            problems.append(ProtocolProblem(
                f"{here}.boundary", f"{boundary['method']} is a fixed boundary: give either 'z' "
                f"or a two-sided nominal 'p', not {given or 'nothing'}"))
    return problems


def _consent_problems(data: dict[str, Any]) -> list[ProtocolProblem]:
    """Consent versions in date order, amendments naming declared versions, re-consent only
    from earlier ones, withdrawal keys naming declared events and visits."""
    problems: list[ProtocolProblem] = []
    versions = data.get("consent", {}).get("versions", [])
    problems += _duplicates(versions, "consent.versions")
    for i, version in enumerate(versions):
        problems += _duplicates(version.get("optional_items", []),
                                f"consent.versions[{i}].optional_items")
        if i and version["date"] < versions[i - 1]["date"]:
            problems.append(ProtocolProblem(
                f"consent.versions[{i}].date",
                f"{version['date']} is before the previous version's date "
                f"({versions[i - 1]['date']}): list versions oldest first"))
    order = {v["code"]: i for i, v in enumerate(versions)}
    seen_protocol: set[str] = set()
    for i, amendment in enumerate(data.get("amendments", [])):
        here = f"amendments[{i}]"
        if amendment["protocol_version"] in seen_protocol:
            problems.append(ProtocolProblem(f"{here}.protocol_version",
                                            f"duplicate protocol_version "
                                            f"{amendment['protocol_version']!r}"))
        seen_protocol.add(amendment["protocol_version"])
        code = amendment["consent_version"]
        if code not in order:
            problems.append(ProtocolProblem(f"{here}.consent_version",
                                            f"unknown consent version {code!r} (declare it "
                                            f"under 'consent.versions')"))
            continue
        for j, old in enumerate(amendment.get("reconsent", [])):
            if old not in order:
                problems.append(ProtocolProblem(f"{here}.reconsent[{j}]",
                                                f"unknown consent version {old!r}"))
            elif order[old] >= order[code]:
                problems.append(ProtocolProblem(
                    f"{here}.reconsent[{j}]",
                    f"{old!r} is not earlier than the amendment's consent version {code!r}"))
    withdrawal = data.get("withdrawal", {})
    events = {e["code"] for e in data.get("events", [])}
    if "treatment_event" in withdrawal and withdrawal["treatment_event"] not in events:
        problems.append(ProtocolProblem("withdrawal.treatment_event",
                                        f"unknown event {withdrawal['treatment_event']!r}"))
    visits = {v["code"] for v in data["visits"]}
    for key in ("treatment_visits", "vital_status_visits"):
        for j, code in enumerate(withdrawal.get(key, [])):
            if code not in visits:
                problems.append(ProtocolProblem(f"withdrawal.{key}[{j}]",
                                                f"unknown visit {code!r}"))
    return problems


def _endpoint_problems(data: dict[str, Any], crfs: dict[str, dict],
                       arm_codes: set[str]) -> list[ProtocolProblem]:
    endpoints = data.get("endpoints", [])
    problems = _duplicates(endpoints, "endpoints")

    def date_source(source: dict, path: str) -> dict | None:
        crf = crfs.get(source["crf"])
        if crf is None:
            problems.append(ProtocolProblem(f"{path}.crf", f"unknown CRF {source['crf']!r}"))
            return None
        if _date_field(crf, source["field"]) is None:
            problems.append(ProtocolProblem(
                f"{path}.field",
                f"{source['field']!r} is not a date field of CRF {source['crf']!r}"))
        return crf

    def check_when(source: dict, crf: dict | None, where: str) -> None:
        if crf is not None and source.get("when") is not None:
            problems.extend(_condition_problems(source["when"], crf, f"{where}.when"))

    event_codes = {e["code"] for e in data.get("events", [])}
    for i, endpoint in enumerate(endpoints):
        here = f"endpoints[{i}]"
        for j, event in enumerate(endpoint["events"]):
            where = f"{here}.events[{j}]"
            for k, arm in enumerate(event.get("arms", [])):
                if arm not in arm_codes:
                    problems.append(ProtocolProblem(f"{where}.arms[{k}]", f"unknown arm {arm!r}"))
            if "event" in event:
                if event["event"] not in event_codes:
                    problems.append(ProtocolProblem(
                        f"{where}.event",
                        f"unknown event {event['event']!r} (declare it under 'events')"))
                continue
            check_when(event, date_source(event, where), where)
        for j, source in enumerate(endpoint["censoring"]["last_evidence"]):
            if isinstance(source, dict):
                where = f"{here}.censoring.last_evidence[{j}]"
                check_when(source, date_source(source, where), where)
        known_strata = ({"site"} if data["randomisation"].get("stratify_by_site") else set()) | {
            f["code"] for f in data.get("stratification_factors", [])}
        for j, factor in enumerate(endpoint.get("strata", [])):
            if factor not in known_strata:
                problems.append(ProtocolProblem(
                    f"{here}.strata[{j}]",
                    f"{factor!r} is not a stratum of the randomisation "
                    f"({', '.join(sorted(known_strata)) or 'none'})"))
        horizon = endpoint.get("horizon_months", data["trial"].get("follow_up_months"))
        if horizon is None:
            problems.append(ProtocolProblem(
                f"{here}.horizon_months",
                "an endpoint is followed up to a horizon: give horizon_months or "
                "trial.follow_up_months"))
        for j, landmark in enumerate(endpoint.get("landmarks", [])):
            if horizon is not None and landmark["months"] > horizon:
                problems.append(ProtocolProblem(
                    f"{here}.landmarks[{j}].months",
                    f"landmark at {landmark['months']} months is past the follow-up horizon "
                    f"({horizon} months)"))

    safety = data.get("safety", {})
    ae = safety.get("adverse_events")
    if ae is not None:
        crf = crfs.get(ae["crf"])
        group = crf and next((f for f in crf["fields"] if f["code"] == ae["group"]
                              and f["type"] == "group"), None)
        if crf is None:
            problems.append(ProtocolProblem("safety.adverse_events.crf",
                                            f"unknown CRF {ae['crf']!r}"))
        elif group is None:
            problems.append(ProtocolProblem("safety.adverse_events.group",
                                            f"{ae['group']!r} is not a group of CRF {ae['crf']!r}"))
        elif all(f["code"] != ae["grade"] for f in group["fields"]):
            problems.append(ProtocolProblem("safety.adverse_events.grade",
                                            f"unknown field {ae['grade']!r} in group {ae['group']!r}"))
    morbidity = safety.get("surgical_morbidity")
    if morbidity is not None:
        crf = crfs.get(morbidity["crf"])
        if crf is None:
            problems.append(ProtocolProblem("safety.surgical_morbidity.crf",
                                            f"unknown CRF {morbidity['crf']!r}"))
        elif all(f["code"] != morbidity["field"] for f in crf["fields"]):
            problems.append(ProtocolProblem(
                "safety.surgical_morbidity.field",
                f"unknown field {morbidity['field']!r} in CRF {morbidity['crf']!r}"))
    problems += _sae_trigger_problems(safety, crfs)
    return problems


def _monitoring_problems(data: dict[str, Any], crfs: dict[str, dict]) -> list[ProtocolProblem]:
    """The key data to verify name known CRFs and top-level fields of them."""
    problems = []
    for i, item in enumerate((data.get("monitoring") or {}).get("key_data", [])):
        crf = crfs.get(item["crf"])
        if crf is None:
            problems.append(ProtocolProblem(f"monitoring.key_data[{i}].crf",
                                            f"unknown CRF {item['crf']!r}"))
            continue
        codes = {f["code"] for f in crf["fields"]}
        for j, code in enumerate(item.get("fields", [])):
            if code not in codes:
                problems.append(ProtocolProblem(
                    f"monitoring.key_data[{i}].fields[{j}]",
                    f"CRF {item['crf']!r} has no field {code!r}"))
    return problems


def _supply_problems(data: dict[str, Any], crfs: dict[str, dict]) -> list[ProtocolProblem]:
    """Kits are dispensed at known visits that collect the dispensing CRF, whose kit field is
    text and whose ``given_field`` is a yes/no question; depots are not repeated."""
    supply = data.get("supply")
    if not supply or not supply["kits"]:
        return []
    problems = _duplicates(supply.get("depots", []), "supply.depots")
    dispensing = supply.get("dispensing")
    if dispensing is None:
        return problems
    crf = crfs.get(dispensing["crf"])
    if crf is None:
        return problems + [ProtocolProblem("supply.dispensing.crf",
                                           f"unknown CRF {dispensing['crf']!r}")]
    fields = {f["code"]: f for f in crf["fields"]}
    if fields.get(dispensing["field"], {}).get("type") != "text":
        problems.append(ProtocolProblem(
            "supply.dispensing.field",
            f"CRF {dispensing['crf']!r} has no text field {dispensing['field']!r}"))
    given = dispensing.get("given_field")
    if given is not None and fields.get(given, {}).get("type") != "yesno":
        problems.append(ProtocolProblem(
            "supply.dispensing.given_field",
            f"CRF {dispensing['crf']!r} has no yes/no field {given!r}"))
    visits = {v["code"]: v for v in data["visits"]}
    for i, code in enumerate(dispensing["visits"]):
        if code not in visits:
            problems.append(ProtocolProblem(f"supply.dispensing.visits[{i}]",
                                            f"unknown visit {code!r}"))
        elif dispensing["crf"] not in visits[code]["crfs"]:
            problems.append(ProtocolProblem(
                f"supply.dispensing.visits[{i}]",
                f"visit {code!r} does not collect CRF {dispensing['crf']!r}"))
    return problems


def _sae_trigger_problems(safety: dict[str, Any], crfs: dict[str, Any]) -> list[ProtocolProblem]:
    """Each SAE trigger names a known CRF and fields of it (``group.field`` inside a group; the
    term and onset fields in the same group as the trigger's field)."""
    problems = []
    codes = [p["code"] for p in safety.get("products", [])]
    if len(codes) != len(set(codes)):
        problems.append(ProtocolProblem("safety.products", "product codes must be unique"))
    if safety.get("sae_triggers") and not codes:
        problems.append(ProtocolProblem("safety.products",
                                        "SAE triggers need the study products to assess"))
    for i, trigger in enumerate(safety.get("sae_triggers", [])):
        here = f"safety.sae_triggers[{i}]"
        crf = crfs.get(trigger["crf"])
        if crf is None:
            problems.append(ProtocolProblem(f"{here}.crf", f"unknown CRF {trigger['crf']!r}"))
            continue
        group = trigger["field"].split(".")[0] if "." in trigger["field"] else None
        for key in ("field", "term_field", "onset_field", "unless"):
            path = trigger.get(key)
            if key == "unless" and path is not None:
                key, path = "unless.field", path["field"]
            if path is None:
                continue
            parts = path.split(".")
            fields = crf["fields"]
            if len(parts) == 2:
                found = next((f for f in fields if f["code"] == parts[0]
                              and f["type"] == "group"), None)
                fields = found["fields"] if found else []
            if len(parts) > 2 or all(f["code"] != parts[-1] for f in fields):
                problems.append(ProtocolProblem(f"{here}.{key}",
                                                f"unknown field {path!r} in CRF {trigger['crf']!r}"))
            elif key != "field" and len(parts) == 2 and parts[0] != group:
                problems.append(ProtocolProblem(
                    f"{here}.{key}", f"{path!r} is not in the trigger's group {group!r}"))
    return problems


def protocol_warnings(data: dict[str, Any]) -> list[ProtocolProblem]:
    """What a valid protocol may still get wrong, reported at load without refusing it: an
    endpoint followed up to a horizon shorter than a figure its own sources publish (REMINET's
    median OS of 41.9 months with a 36-month horizon: no curve built here could show it)."""
    warnings = []
    follow_up = data["trial"].get("follow_up_months")
    for i, endpoint in enumerate(data.get("endpoints", [])):
        horizon = endpoint.get("horizon_months", follow_up)
        for j, figure in enumerate(endpoint.get("published", [])):
            if horizon is not None and figure["months"] > horizon:
                warnings.append(ProtocolProblem(
                    f"endpoints[{i}].published[{j}].months",
                    f"{endpoint['code']}: the follow-up horizon ({horizon} months) is shorter "
                    f"than the published {figure['what']} ({figure['months']} months, "
                    f"{figure['source']})"))
    return warnings


def _field_at(crf: dict, path: str) -> dict | None:
    """The field ``path`` (``field`` or ``group.field``) of ``crf``, or None."""
    fields = crf["fields"]
    if "." in path:
        group, path = path.split(".", 1)
        fields = next((f.get("fields", []) for f in fields if f["code"] == group), [])
    return next((f for f in fields if f["code"] == path), None)


def _condition_problems(cond: dict, crf: dict, where: str) -> list[ProtocolProblem]:
    """A ``when`` condition names a field of ``crf`` (``group.field`` for a group's) and, for a
    choice, values among its choices."""
    field = _field_at(crf, cond["field"])
    if field is None:
        return [ProtocolProblem(f"{where}.field",
                                f"unknown field {cond['field']!r} in CRF {crf['code']!r}")]
    known = {str(c["code"]) for c in field.get("choices", [])}
    wanted = cond["in"] if "in" in cond else [cond["equals"]]
    return [ProtocolProblem(where, f"{value!r} is not a choice of field {cond['field']!r} in "
                                   f"CRF {crf['code']!r}")
            for value in wanted if known and str(value) not in known]


def _shown_by_problems(event: dict, crfs: dict[str, dict], here: str) -> list[ProtocolProblem]:
    """Each record said to show an event names a date field of a known CRF, conditions on
    fields that exist, and ``expected_when`` on a field of the event's own CRF."""
    problems = []
    own = crfs.get(event["source"]["crf"])
    for j, source in enumerate(event.get("shown_by", [])):
        where = f"{here}.shown_by[{j}]"
        crf = crfs.get(source["crf"])
        if crf is None:
            problems.append(ProtocolProblem(f"{where}.crf", f"unknown CRF {source['crf']!r}"))
            continue
        if _date_field(crf, source["field"]) is None:
            problems.append(ProtocolProblem(
                f"{where}.field",
                f"{source['field']!r} is not a date field of CRF {source['crf']!r}"))
        if "when" in source:
            cond = source["when"]
            problems += _condition_problems(cond, crf, f"{where}.when")
            group = source["field"].split(".", 1)[0] if "." in source["field"] else None
            if "." in cond["field"] and cond["field"].split(".", 1)[0] != group:
                problems.append(ProtocolProblem(
                    f"{where}.when.field",
                    f"{cond['field']!r} is in a group: the date must be a field of the same "
                    f"group, read row by row"))
        if "expected_when" in source and own is not None:
            problems += _condition_problems(source["expected_when"], own,
                                            f"{where}.expected_when")
        if source["crf"] == event["source"]["crf"] and "when" not in source:
            problems.append(ProtocolProblem(
                where, "the event's own CRF shows it again only under a condition ('when')"))
    return problems


def _is_date_field(crfs: dict[str, dict], source: dict) -> bool:
    """True when ``source`` names a date field (or names something unknown: reported elsewhere)."""
    crf = crfs.get(source["crf"])
    if crf is None or all(f["code"] != source["field"] for f in crf["fields"]):
        return True
    return _date_field(crf, source["field"]) is not None


def crf_deriving(definition: dict[str, Any], derivation: str) -> tuple[str, str] | None:
    """(CRF code, field code) of the first top-level field the protocol computes by
    ``derivation`` (e.g. ``recist_overall_response``: the tumour assessment's response)."""
    for crf in definition.get("crfs", []):
        for field in crf["fields"]:
            if field.get("derived") == derivation:
                return crf["code"], field["code"]
    return None


def crf_scored_as(definition: dict[str, Any], scoring: str) -> str | None:
    """The code of the CRF whose items follow ``scoring`` (e.g. ``eortc_qlq_c30``)."""
    return next((c["code"] for c in definition.get("crfs", []) if c.get("scoring") == scoring),
                None)


def canonical_json(data: dict[str, Any]) -> str:
    """The definition in one canonical text, so equal content gives an equal digest."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def definition_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
