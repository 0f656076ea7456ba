"""HTML pages. Every value from a user or the database passes through ``_e``."""

import html

from .validation import FIELDS


def _e(value):
    return html.escape(str(value), quote=True)


def _footer(site):
    parts = ["%s %s" % (_e(site["title"]), _e(site["version"]))]
    if site.get("instance_id"):
        parts.append("Instance <code>%s</code>" % _e(site["instance_id"]))
    if site.get("availability_zone"):
        parts.append("Availability zone <code>%s</code>" % _e(site["availability_zone"]))
    parts.append("Host <code>%s</code>" % _e(site["hostname"]))
    return " · ".join(parts)


def layout(site, title, body):
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>%s · %s</title>\n"
        '<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n'
        '<header><a class="brand" href="/">%s</a>'
        '<a class="button" href="/employees/new">Add employee</a></header>\n'
        "<main>\n%s\n</main>\n"
        '<footer id="served-by">%s</footer>\n</body>\n</html>\n'
    ) % (_e(title), _e(site["title"]), _e(site["title"]), body, _footer(site))


def _photo(employee, css_class):
    if employee["has_photo"]:
        return '<img class="%s" src="/employees/%d/photo" alt="Photo of %s">' % (
            css_class,
            employee["id"],
            _e(employee["name"]),
        )
    initials = "".join(word[0] for word in employee["name"].split()[:2]).upper()
    return '<span class="%s initials" aria-hidden="true">%s</span>' % (css_class, _e(initials))


def employee_list(site, employees, query):
    rows = []
    for employee in employees:
        rows.append(
            '<li class="card">%s<div><a href="/employees/%d"><strong>%s</strong></a>'
            "<span>%s · %s</span><span>%s</span></div></li>"
            % (
                _photo(employee, "thumb"),
                employee["id"],
                _e(employee["name"]),
                _e(employee["job_title"]),
                _e(employee["department"]),
                _e(employee["location"]),
            )
        )
    if query:
        summary = "%d result%s for “%s”" % (len(employees), "" if len(employees) == 1 else "s", _e(query))
    else:
        summary = "%d employee%s" % (len(employees), "" if len(employees) == 1 else "s")
    body = (
        '<form class="search" method="get" action="/" role="search">'
        '<label for="q" class="visually-hidden">Search</label>'
        '<input id="q" type="search" name="q" value="%s" placeholder="Search by name, title, department, place, email">'
        '<button type="submit">Search</button></form>\n'
        '<p class="summary">%s</p>\n<ul class="cards">%s</ul>'
    ) % (_e(query), summary, "".join(rows) or '<li class="empty">No employees found.</li>')
    return layout(site, "Employees", body)


def employee_detail(site, employee, csrf_token):
    items = "".join(
        "<dt>%s</dt><dd>%s</dd>" % (_e(label), _e(employee[field]))
        for field, (label, _) in FIELDS.items()
        if field not in ("name", "email")
    )
    body = (
        '<article class="profile">%s<h1>%s</h1>'
        '<p><a href="mailto:%s">%s</a></p><dl>%s</dl>'
        '<div class="actions"><a class="button" href="/employees/%d/edit">Edit</a>'
        '<form method="post" action="/employees/%d/delete">'
        '<input type="hidden" name="csrf_token" value="%s">'
        '<button class="danger" type="submit">Delete</button></form></div></article>'
    ) % (
        _photo(employee, "portrait"),
        _e(employee["name"]),
        _e(employee["email"]),
        _e(employee["email"]),
        items,
        employee["id"],
        employee["id"],
        _e(csrf_token),
    )
    return layout(site, employee["name"], body)


def employee_form(site, csrf_token, values, errors, employee_id=None, max_photo_bytes=0):
    """The add form (``employee_id`` None) or the edit form, showing ``errors``."""
    action = "/employees" if employee_id is None else "/employees/%d" % employee_id
    heading = "Add employee" if employee_id is None else "Edit employee"
    inputs = []
    for field, (label, max_length) in FIELDS.items():
        message = errors.get(field)
        inputs.append(
            '<label for="%s">%s</label><input id="%s" name="%s" type="%s" maxlength="%d" required value="%s"%s>%s'
            % (
                field,
                _e(label),
                field,
                field,
                "email" if field == "email" else "text",
                max_length,
                _e(values.get(field, "")),
                ' aria-invalid="true"' if message else "",
                '<p class="error">%s</p>' % _e(message) if message else "",
            )
        )
    photo_error = errors.get("photo")
    banner = ""
    if errors:
        banner = '<p class="error banner" role="alert">Please correct the errors below.%s</p>' % (
            " " + _e(errors["_form"]) if "_form" in errors else ""
        )
    body = (
        '<h1>%s</h1>%s<form class="edit" method="post" action="%s" enctype="multipart/form-data">'
        '<input type="hidden" name="csrf_token" value="%s">%s'
        '<label for="photo">Photo (JPEG, PNG, GIF or WebP, up to %s)</label>'
        '<input id="photo" name="photo" type="file" accept="image/jpeg,image/png,image/gif,image/webp">%s'
        '<div class="actions"><button type="submit">Save</button>'
        '<a class="button secondary" href="%s">Cancel</a></div></form>'
    ) % (
        heading,
        banner,
        action,
        _e(csrf_token),
        "".join(inputs),
        _e(human_size(max_photo_bytes)),
        '<p class="error">%s</p>' % _e(photo_error) if photo_error else "",
        "/" if employee_id is None else "/employees/%d" % employee_id,
    )
    return layout(site, heading, body)


def error_page(site, status, title, message):
    body = '<h1>%d · %s</h1><p>%s</p><p><a href="/">Back to the directory</a></p>' % (status, _e(title), _e(message))
    return layout(site, title, body)


def human_size(size):
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return "%d MiB" % (size // (1024 * 1024))
    if size >= 1024:
        return "%d KiB" % (size // 1024)
    return "%d bytes" % size
