"""What both stores share: their two errors and the check of the seed employees.

``DuplicateEmail``: an address is taken. ``StoreUnavailable`` (one line saying why): the store cannot be reached
or used; the app answers it with 503. Both stores import this module, and it imports neither of them.
"""

from .validation import clean_employee


class DuplicateEmail(Exception):
    """Another employee already has this email address."""


class StoreUnavailable(Exception):
    """The store does not answer, or refuses: the message says which store and why, on one line."""


def clean_seed(seed):
    """The seed employees, validated; ValueError naming the first bad one, or a repeated address."""
    cleaned = []
    seen = set()
    for number, item in enumerate(seed, start=1):
        fields, errors = clean_employee(item)
        if errors:
            raise ValueError(f"seed employee {number}: {' '.join(errors.values())}")
        if fields["email"].lower() in seen:
            raise ValueError("seed employees must have distinct email addresses")
        seen.add(fields["email"].lower())
        cleaned.append(fields)
    return cleaned
