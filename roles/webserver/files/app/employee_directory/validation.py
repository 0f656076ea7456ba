"""Server-side validation of employee records."""

import re

# Field name -> (label shown to users, maximum length in characters).
FIELDS = {
    "name": ("Name", 100),
    "job_title": ("Job title", 100),
    "department": ("Department", 100),
    "location": ("Location", 100),
    "email": ("Email", 254),
}

# Deliberately simple: one @, no spaces, a dot in the domain. Anything stricter
# rejects real addresses; the only proof an address works is to mail it.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_employee(data, partial=False):
    """Return (cleaned fields, errors) for a mapping of employee fields.

    ``errors`` maps a field name (or ``"_unknown"``) to a message; it is empty
    when the data is valid.  With ``partial`` only the fields present are
    checked, as for an HTTP PATCH.
    """
    cleaned = {}
    errors = {}
    unknown = sorted(str(key) for key in data if key not in FIELDS)
    if unknown:
        errors["_unknown"] = "Unknown field(s): " + ", ".join(unknown) + "."
    for field, (label, max_length) in FIELDS.items():
        if field not in data:
            if not partial:
                errors[field] = label + " is required."
            continue
        value = data[field]
        if not isinstance(value, str):
            errors[field] = label + " must be a string."
            continue
        value = value.strip()
        if not value:
            errors[field] = label + " is required."
        elif len(value) > max_length:
            errors[field] = f"{label} must be at most {max_length} characters."
        elif _CONTROL.search(value):
            errors[field] = label + " must not contain control characters."
        elif field == "email" and not _EMAIL.match(value):
            errors[field] = "Email must be an address like name@example.com."
        else:
            cleaned[field] = value
    return cleaned, errors
