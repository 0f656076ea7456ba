"""How the directory compares text: one rule for search and sorting, in every store.

``fold`` makes text case- and accent-insensitive without any locale: Unicode case folding, then NFKD with
the combining marks dropped ("ZOË" and "Zoë" become "zoe", "Émile" "emile", "Иван" "иван"). A few Latin
letters carry their mark in the letter itself (Ł, Ø, Đ, Æ...), so NFKD leaves them whole; they are spelled
with the letters they are sorted and searched with, so that "Łukasz" sorts among the L's and "lukasz" finds
him. Scripts keep Unicode's order of code points between them: Latin, then Greek, then Cyrillic.
"""

import unicodedata

# Letters NFKD does not decompose, as the letters people type for them (after case folding).
_LETTERS = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ħ": "h",
        "\u0131": "i",  # dotless i
        "ŧ": "t",
        "ƀ": "b",
        "ɨ": "i",
        "ʉ": "u",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ĸ": "k",
    }
)


def fold(text):
    """``text`` case- and accent-insensitive: compare and search folded text only."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LETTERS))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def sort_key(employee):
    """The order of the directory: by folded name, then by name as written, then by ID (never a tie)."""
    return (fold(employee["name"]), employee["name"], employee["id"])


def matches(employee, needle, department, fields):
    """Whether an employee has the folded ``needle`` in one of ``fields`` and is in ``department`` (folded)."""
    if department and fold(employee["department"]) != department:
        return False
    return not needle or any(needle in fold(employee[field]) for field in fields)


def departments(names):
    """The distinct departments of ``names`` (one spelling for each folded name), in the directory's order."""
    chosen = {}
    for name in sorted(names):
        chosen.setdefault(fold(name), name)
    return [chosen[key] for key in sorted(chosen)]
