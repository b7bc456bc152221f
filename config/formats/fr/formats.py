"""How dates are shown to a reader in French: one format everywhere (pages, PDFs, e-mails).

The French way, day first (04/12/2026). Exports (CSV, ODM, API) stay ISO 8601; date boxes
(``<input type="date">``) always receive ISO (``core.forms.DateInput``), the browser showing
the date its own way. ``docs/operations.md`` ("Dates") states the rule.
"""
DATE_FORMAT = "d/m/Y"
SHORT_DATE_FORMAT = "d/m/Y"
YEAR_MONTH_FORMAT = "m/Y"
MONTH_DAY_FORMAT = "d/m"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
DATETIME_FORMAT = "d/m/Y H:i T"
DATE_INPUT_FORMATS = ["%d/%m/%Y", "%Y-%m-%d"]
FIRST_DAY_OF_WEEK = 1
