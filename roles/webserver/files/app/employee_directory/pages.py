"""HTML pages. Every value from a user or the database passes through ``_e``."""

import html

from .validation import FIELDS


def _e(value):
    return html.escape(str(value), quote=True)


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _footer(site):
    parts = [f"{_e(site['title'])} {_e(site['version'])}"]
    if site.get("instance_id"):
        parts.append(f"Instance <code>{_e(site['instance_id'])}</code>")
    if site.get("availability_zone"):
        parts.append(f"Availability zone <code>{_e(site['availability_zone'])}</code>")
    parts.append(f"Host <code>{_e(site['hostname'])}</code>")
    return " · ".join(parts)


def layout(site, title, body):
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)} · {_e(site['title'])}</title>\n"
        '<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n'
        f'<header><a class="brand" href="/">{_e(site["title"])}</a>'
        '<a class="button" href="/employees/new">Add employee</a></header>\n'
        f"<main>\n{body}\n</main>\n"
        f'<footer id="served-by">{_footer(site)}</footer>\n</body>\n</html>\n'
    )


def _photo(employee, css_class):
    if employee["has_photo"]:
        return (
            f'<img class="{css_class}" src="/employees/{employee["id"]}/photo" alt="Photo of {_e(employee["name"])}">'
        )
    initials = "".join(word[0] for word in employee["name"].split()[:2]).upper()
    return f'<span class="{css_class} initials" aria-hidden="true">{_e(initials)}</span>'


_NONE_FOUND = '<li class="empty">No employees found.</li>'


def employee_list(site, employees, query):
    rows = "".join(
        f'<li class="card">{_photo(employee, "thumb")}<div>'
        f'<a href="/employees/{employee["id"]}"><strong>{_e(employee["name"])}</strong></a>'
        f"<span>{_e(employee['job_title'])} · {_e(employee['department'])}</span>"
        f"<span>{_e(employee['location'])}</span></div></li>"
        for employee in employees
    )
    summary = _plural(len(employees), "employee")
    if query:
        summary = f"{_plural(len(employees), 'result')} for &ldquo;{_e(query)}&rdquo;"
    body = (
        '<form class="search" method="get" action="/" role="search">'
        '<label for="q" class="visually-hidden">Search</label>'
        f'<input id="q" type="search" name="q" value="{_e(query)}"'
        ' placeholder="Search by name, title, department, place, email">'
        '<button type="submit">Search</button></form>\n'
        f'<p class="summary">{summary}</p>\n'
        f'<ul class="cards">{rows or _NONE_FOUND}</ul>'
    )
    return layout(site, "Employees", body)


def employee_detail(site, employee, csrf_token):
    items = "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(employee[field])}</dd>"
        for field, (label, _max_length) in FIELDS.items()
        if field not in ("name", "email")
    )
    employee_id = employee["id"]
    body = (
        f'<article class="profile">{_photo(employee, "portrait")}<h1>{_e(employee["name"])}</h1>'
        f'<p><a href="mailto:{_e(employee["email"])}">{_e(employee["email"])}</a></p><dl>{items}</dl>'
        f'<div class="actions"><a class="button" href="/employees/{employee_id}/edit">Edit</a>'
        f'<form method="post" action="/employees/{employee_id}/delete">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        '<button class="danger" type="submit">Delete</button></form></div></article>'
    )
    return layout(site, employee["name"], body)


def _error(message):
    return f'<p class="error">{_e(message)}</p>' if message else ""


def employee_form(site, csrf_token, values, errors, employee_id=None, max_photo_bytes=0):
    """The add form (``employee_id`` None) or the edit form, showing ``errors``."""
    if employee_id is None:
        action, heading, back = "/employees", "Add employee", "/"
    else:
        action, heading, back = f"/employees/{employee_id}", "Edit employee", f"/employees/{employee_id}"
    inputs = []
    for field, (label, max_length) in FIELDS.items():
        message = errors.get(field)
        kind = "email" if field == "email" else "text"
        invalid = ' aria-invalid="true"' if message else ""
        inputs.append(
            f'<label for="{field}">{_e(label)}</label>'
            f'<input id="{field}" name="{field}" type="{kind}" maxlength="{max_length}" required'
            f' value="{_e(values.get(field, ""))}"{invalid}>{_error(message)}'
        )
    banner = ""
    if errors:
        banner = '<p class="error banner" role="alert">Please correct the errors below.</p>'
    body = (
        f"<h1>{heading}</h1>{banner}"
        f'<form class="edit" method="post" action="{action}" enctype="multipart/form-data">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">{"".join(inputs)}'
        f'<label for="photo">Photo (JPEG, PNG, GIF or WebP, up to {_e(human_size(max_photo_bytes))})</label>'
        '<input id="photo" name="photo" type="file" accept="image/jpeg,image/png,image/gif,image/webp">'
        f"{_error(errors.get('photo'))}"
        '<div class="actions"><button type="submit">Save</button>'
        f'<a class="button secondary" href="{back}">Cancel</a></div></form>'
    )
    return layout(site, heading, body)


def error_page(site, status, title, message):
    body = f'<h1>{status} · {_e(title)}</h1><p>{_e(message)}</p><p><a href="/">Back to the directory</a></p>'
    return layout(site, title, body)


def human_size(size):
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size >= 1024:
        return f"{size // 1024} KiB"
    return f"{size} bytes"
