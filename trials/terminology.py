"""Adverse-event terminologies (NCI-CTCAE) shipped as data and loaded like a protocol.

A terminology is one CSV file in ``trials/reference/`` (``<code>.csv``, e.g. ``ctcae-4.03.csv``;
its README says where it comes from). ``read_terminology_file`` checks it and refuses a bad
file with every problem found, each naming its row (``row 12: soc is empty``; rows are CSV
records, the header being row 1, as a spreadsheet numbers them); nothing here
touches the database. ``load_terminology`` stores what it accepts in one transaction: the same
content (same sha256 digest) loads once; changed content replaces the term list of that code.

A protocol names the terminology of a ``term`` field (``terminology: ctcae-4.03``);
``trials.protocol`` refuses a code no shipped file has, so a CRF never points at a list that
is not there. A term is stored in CRF data as its CTCAE label, unique within its version; the
MedDRA code and the grades it defines are read from here (``terms_of``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
GRADES = (1, 2, 3, 4, 5)
COLUMNS = ["meddra_code", "soc", "term"] + [f"grade_{g}" for g in GRADES] + ["definition"]
UNDEFINED = ("", "-", "—")  # a grade the term does not have, as the NCI file writes it

# What each shipped file is: its name and where it was published (README.md beside the files).
SHIPPED = {
    "ctcae-4.03": {
        "name": "NCI-CTCAE v4.03",
        "source": "https://ctep.cancer.gov/protocoldevelopment/electronic_applications/ctc.htm"
                  " (CTCAE_4.03_2010-06-14; MedDRA v12.0 codes)",
    },
    "ctcae-5.0": {
        "name": "NCI-CTCAE v5.0",
        "source": "https://ctep.cancer.gov/protocoldevelopment/electronic_applications/ctc.htm"
                  " (CTCAE v5.0, 27 November 2017; MedDRA v20.1 codes)",
    },
}


@dataclass(frozen=True)
class TermData:
    meddra_code: str
    soc: str
    label: str
    definition: str
    grades: dict[str, str]  # "1".."5" -> the grade's definition, only the grades the term has


@dataclass
class TerminologyData:
    code: str
    name: str
    source: str
    digest: str
    terms: list[TermData] = field(default_factory=list)


class TerminologyError(Exception):
    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: " + "; ".join(problems))


def shipped_terminology_codes() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.csv"))


def shipped_terminology_file(code: str) -> Path:
    return REFERENCE_DIR / f"{code}.csv"


def read_terminology_file(path: str | Path, *, code: str | None = None) -> TerminologyData:
    path = Path(path)
    raw = path.read_bytes()
    return parse_terminology(raw, code=code or path.stem, source=path.name)


def parse_terminology(raw: bytes, *, code: str, source: str) -> TerminologyData:
    """The checked content of a terminology file, or ``TerminologyError`` with every problem."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,31}", code):
        raise TerminologyError(source, [f"terminology code {code!r}: lower-case letters, digits, "
                                        "'.' and '-', at most 32 (the file name without .csv)"])
    meta = SHIPPED.get(code, {"name": code, "source": source})
    data = TerminologyData(code=code, name=meta["name"], source=meta["source"],
                           digest=hashlib.sha256(raw).hexdigest())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise TerminologyError(source, [problem]) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != COLUMNS:
        found = ", ".join(header or []) or "nothing"
        raise TerminologyError(source, [f"row 1: the columns must be {', '.join(COLUMNS)} "
                                        f"(found {found})"])
    problems: list[str] = []
    codes: dict[str, int] = {}
    labels: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            problems.append(f"row {number}: {len(row)} columns instead of {len(COLUMNS)}")
            continue
        values = dict(zip(COLUMNS, (cell.strip() for cell in row), strict=True))
        here = f"row {number}"
        meddra, label = values["meddra_code"], values["term"]
        if not re.fullmatch(r"[0-9]{8}", meddra):
            problems.append(f"{here}: meddra_code {meddra!r} is not an 8-digit MedDRA code")
        elif meddra in codes:
            problems.append(f"{here}: meddra_code {meddra} already given on row {codes[meddra]}")
        else:
            codes[meddra] = number
        if not label:
            problems.append(f"{here}: term is empty")
        elif len(label) > 200:
            problems.append(f"{here}: term is longer than 200 characters")
        elif label.casefold() in labels:
            problems.append(f"{here}: term {label!r} already given on row "
                            f"{labels[label.casefold()]}")
        else:
            labels[label.casefold()] = number
        if not values["soc"] or len(values["soc"]) > 100:
            problems.append(f"{here}: soc is empty" if not values["soc"] else
                            f"{here}: soc is longer than 100 characters")
        grades = {str(g): values[f"grade_{g}"] for g in GRADES
                  if values[f"grade_{g}"] not in UNDEFINED}
        if not grades:
            problems.append(f"{here}: the term defines no grade (grade_1 to grade_5 all '-')")
        data.terms.append(TermData(meddra, values["soc"], label, values["definition"], grades))
    if not data.terms and not problems:
        problems.append("the file lists no term")
    if problems:
        raise TerminologyError(source, problems)
    return data


@dataclass(frozen=True)
class LoadResult:
    code: str
    digest: str
    terms: int
    created: bool

    def __str__(self) -> str:
        state = "loaded" if self.created else "unchanged, already loaded"
        return f"{self.code}: {state}, {self.terms} terms (sha256 {self.digest[:16]}…)"


def store_terminology(data: TerminologyData, *, terminology_model, term_model) -> LoadResult:
    """Store checked data; the models are passed so a data migration can use this too.

    The caller holds the transaction. Idempotent: the same digest changes nothing. New content
    replaces the whole list: CRF data stores term labels, not rows, so nothing points at a term.
    """
    existing = terminology_model.objects.filter(code=data.code).first()
    if existing is not None and existing.digest == data.digest:
        return LoadResult(data.code, data.digest, existing.terms.count(), created=False)
    if existing is None:
        existing = terminology_model.objects.create(code=data.code, name=data.name,
                                                    source=data.source, digest=data.digest)
    else:
        existing.name, existing.source, existing.digest = data.name, data.source, data.digest
        existing.save()
        existing.terms.all().delete()
    term_model.objects.bulk_create(
        term_model(terminology=existing, meddra_code=t.meddra_code, soc=t.soc, label=t.label,
                   definition=t.definition, grades=t.grades, order=i)
        for i, t in enumerate(data.terms))
    return LoadResult(data.code, data.digest, len(data.terms), created=True)
