"""How dates are shown to a reader in English: one format everywhere (pages, PDFs, e-mails).

ISO 8601 (2026-12-04): unambiguous for readers of every country of a multinational trial,
where 04/12/2026 is April to some and December to others. Exports (CSV, ODM, API) are ISO
8601 in every language; date boxes (``<input type="date">``) always receive ISO too
(``core.forms.DateInput``). ``docs/operations.md`` ("Dates") states the rule.
"""
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
YEAR_MONTH_FORMAT = "Y-m"
MONTH_DAY_FORMAT = "m-d"
TIME_FORMAT = "H:i"
# An instant, to the minute: when something was done, in lists and pages.
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
# An instant with its time zone: signatures, printed reports (the audit trail adds seconds).
DATETIME_FORMAT = "Y-m-d H:i T"
DATE_INPUT_FORMATS = ["%Y-%m-%d", "%d/%m/%Y"]
FIRST_DAY_OF_WEEK = 1
