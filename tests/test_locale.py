"""The committed French catalogue is compiled: every translation in django.po is in django.mo
(a fresh machine has no gettext to compile it, so a stale .mo would ship English)."""
from __future__ import annotations

import gettext
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parent.parent / "locale" / "fr" / "LC_MESSAGES"


def po_translations(text: str) -> dict[tuple[str | None, str], str]:
    """Singular entries with a translation, from a .po file (enough for this check), keyed by
    (context, msgid): "Randomised" the status and "Randomised" the count column differ."""
    out = {}
    for block in text.split("\n\n"):
        if "#, fuzzy" in block or "msgid_plural" in block or block.lstrip().startswith("#~"):
            continue
        parts = re.findall(r'^(msgctxt|msgid|msgstr) ((?:".*"\n?)+)', block + "\n", flags=re.M)
        fields = {key: "".join(re.findall(r'"(.*)"', value)).encode().decode("unicode_escape")
                                  .encode("latin-1").decode("utf-8")
                  for key, value in parts}
        if fields.get("msgid") and fields.get("msgstr"):
            out[(fields.get("msgctxt"), fields["msgid"])] = fields["msgstr"]
    return out


def test_the_french_mo_is_compiled_from_the_po():
    po = po_translations((LOCALE / "django.po").read_text(encoding="utf-8"))
    with open(LOCALE / "django.mo", "rb") as handle:
        mo = gettext.GNUTranslations(handle)
    assert len(po) > 50
    stale = {msgid for (context, msgid), msgstr in po.items()
             if (mo.pgettext(context, msgid) if context else mo.gettext(msgid)) != msgstr}
    assert not stale, f"run `manage.py compilemessages`: {sorted(stale)[:5]}"


def test_no_french_entry_is_left_empty_or_fuzzy():
    """A fuzzy entry is a guess by msgmerge (often a neighbouring sentence): Django ignores it,
    so the page shows English; an empty one shows English too."""
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n")[1:] if not b.lstrip().startswith("#~")]
    fuzzy = [b for b in blocks if re.search(r"^#,.*\bfuzzy\b", b, flags=re.M)]
    empty = [b for b in blocks if re.search(r'^msgstr(\[\d\])? ""\n(?!")', b + "\n", flags=re.M)]
    assert not fuzzy, f"{len(fuzzy)} fuzzy entries, e.g. {fuzzy[0]}"
    assert not empty, f"{len(empty)} untranslated entries, e.g. {empty[0]}"
