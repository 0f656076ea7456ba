"""HTML pages. Every value from a user or the database passes through ``_e``."""

import html
import urllib.parse

from .validation import FIELDS

# What browsers may fill in for each field (the HTML autofill tokens). No token names a department:
# "on" lets the browser offer what was typed before, where "off" would also stop it restoring the
# field when the user comes back to the form.
_AUTOCOMPLETE = {
    "name": "name",
    "job_title": "organization-title",
    "department": "on",
    "location": "address-level2",
    "email": "email",
}


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


def signin_url(next_page):
    """The sign-in page, coming back to ``next_page`` afterwards."""
    if not next_page or next_page == "/":
        return "/signin"
    if next_page.startswith("/signin"):
        return next_page
    return "/signin?" + urllib.parse.urlencode({"next": next_page})


def _nav(site):
    if not site.get("admin"):
        return f'<nav><a class="button secondary" href="{_e(signin_url(site.get("here")))}">Sign in</a></nav>'
    return (
        '<nav><a class="button" href="/employees/new">Add employee</a>'
        '<form method="post" action="/signout">'
        f'<input type="hidden" name="csrf_token" value="{_e(site["csrf_token"])}">'
        '<button class="secondary" type="submit">Sign out</button></form></nav>'
    )


def layout(site, title, body):
    flash = ""
    if site.get("flash"):
        flash = f'<p class="flash" role="status">{_e(site["flash"])}</p>\n'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)} · {_e(site['title'])}</title>\n"
        '<link rel="stylesheet" href="/static/style.css">\n'
        # Every page has a form to send (if only Sign out): the script keeps each from being sent twice.
        + '<script src="/static/form.js" defer></script>\n'
        + "</head>\n<body>\n"
        f'<header><a class="brand" href="/">{_e(site["title"])}</a>{_nav(site)}</header>\n'
        f"<main>\n{flash}{body}\n</main>\n"
        f'<footer id="served-by">{_footer(site)}</footer>\n</body>\n</html>\n'
    )


def initials(name):
    """Up to two initials: the first letter or digit of the first two words that have one."""
    found = [next((char for char in word if char.isalnum()), "") for word in name.split()]
    return "".join(char for char in found if char)[:2].upper() or "?"


def _photo(employee, css_class):
    if employee["has_photo"]:
        return (
            f'<img class="{css_class}" src="/employees/{employee["id"]}/photo" alt="Photo of {_e(employee["name"])}">'
        )
    return f'<span class="{css_class} initials" aria-hidden="true">{_e(initials(employee["name"]))}</span>'


_NONE_FOUND = '<li class="empty">No employees found.</li>'


# Pages shown around the current one in the pager, besides the first and the last.
PAGER_WINDOW = 2


def page_numbers(number, pages):
    """The pages the pager links: the first, the last and a window around ``number``; None where it skips some."""
    shown = sorted({1, pages} | set(range(max(1, number - PAGER_WINDOW), min(pages, number + PAGER_WINDOW) + 1)))
    numbers = []
    for page in shown:
        if numbers and page - numbers[-1] == 2:
            numbers.append(page - 1)  # one page skipped: its number takes no more room than the gap
        elif numbers and page - numbers[-1] > 2:
            numbers.append(None)
        numbers.append(page)
    return numbers


def list_url(query, department, number=1):
    """The list's address for a search, a department and a page (parameters left out when they are the default)."""
    params = {name: value for name, value in (("q", query), ("department", department)) if value}
    if number > 1:
        params["page"] = number
    return "/?" + urllib.parse.urlencode(params) if params else "/"


def _pager(query, department, paging):
    if paging["pages"] <= 1:
        return ""
    number = paging["number"]

    def link(page, text, rel=None, label=None):
        extra = (f' rel="{rel}"' if rel else "") + (f' aria-label="{label}"' if label else "")
        return f'<a href="{_e(list_url(query, department, page))}"{extra}>{text}</a>'

    items = []
    for page in page_numbers(number, paging["pages"]):
        if page is None:
            items.append('<li class="gap" aria-hidden="true">&hellip;</li>')
        elif page == number:
            items.append(f'<li><span aria-current="page" aria-label="Page {page}">{page}</span></li>')
        else:
            items.append(f"<li>{link(page, page, label=f'Page {page}')}</li>")
    previous = link(number - 1, "&larr; Previous", "prev") if number > 1 else ""
    following = link(number + 1, "Next &rarr;", "next") if number < paging["pages"] else ""
    return (
        f'<nav class="pager" aria-label="Pages">{previous}<ol>{"".join(items)}</ol>{following}'
        f'<span class="pager-status">Page {number} of {paging["pages"]}</span></nav>'
    )


def _department_filter(departments, department):
    options = "".join(
        f'<option value="{_e(name)}"{" selected" if name == department else ""}>{_e(name)}</option>'
        for name in departments
    )
    return (
        '<label for="department" class="visually-hidden">Department</label>'
        f'<select id="department" name="department"><option value="">All departments</option>{options}</select>'
    )


def _card(employee):
    return (
        f'<li class="card">{_photo(employee, "thumb")}<div>'
        f'<a href="/employees/{employee["id"]}"><strong dir="auto">{_e(employee["name"])}</strong></a>'
        f'<span dir="auto">{_e(employee["job_title"])} · {_e(employee["department"])}</span>'
        f'<span dir="auto">{_e(employee["location"])}</span>'
        f'<span class="email">{_e(employee["email"])}</span></div></li>'
    )


def _nothing_listed(site, query, department):
    if query or department:
        return _NONE_FOUND
    if site.get("admin"):
        return '<li class="empty">The directory is empty. <a href="/employees/new">Add the first employee</a>.</li>'
    return (
        '<li class="empty">The directory is empty. '
        '<a href="/signin?next=/employees/new">Sign in</a> to add the first employee.</li>'
    )


def employee_list(site, employees, query, paging, department="", departments=()):
    rows = "".join(_card(employee) for employee in employees)
    total = paging["total"]
    summary = _plural(total, "employee")
    if query:
        summary = f"{_plural(total, 'result')} for &ldquo;{_e(query)}&rdquo;"
    if department:
        summary += f" in {_e(department)}"
    if paging["pages"] > 1:
        first = (paging["number"] - 1) * paging["size"] + 1
        summary += f", showing {first} to {first + len(employees) - 1}"
    body = (
        "<h1>Employees</h1>"
        '<form class="search" method="get" action="/" role="search">'
        '<label for="q" class="visually-hidden">Search</label>'
        f'<input id="q" type="search" name="q" value="{_e(query)}" autocomplete="off" dir="auto"'
        ' placeholder="Name, title, place, email">'
        f"{_department_filter(departments, department) if departments else ''}"
        '<button type="submit">Search</button></form>\n'
        f'<p class="summary">{summary}</p>\n'
        f'<ul class="cards">{rows or _nothing_listed(site, query, department)}</ul>\n'
        f"{_pager(query, department, paging)}"
    )
    return layout(site, "Employees", body)


_BACK = '<p class="back"><a href="/">&larr; All employees</a></p>'


def employee_detail(site, employee):
    items = "".join(
        f'<dt>{_e(label)}</dt><dd dir="auto">{_e(employee[field])}</dd>'
        for field, (label, _max_length) in FIELDS.items()
        if field not in ("name", "email")
    )
    employee_id = employee["id"]
    if site.get("admin"):
        actions = (
            f'<div class="actions"><a class="button" href="/employees/{employee_id}/edit">Edit</a>'
            f'<a class="button danger" href="/employees/{employee_id}/delete">Delete</a></div>'
        )
    else:
        actions = f'<p class="hint"><a href="/signin?next=/employees/{employee_id}">Sign in</a> to change it.</p>'
    body = (
        f'{_BACK}<article class="profile">{_photo(employee, "portrait")}<h1 dir="auto">{_e(employee["name"])}</h1>'
        f'<p><a href="mailto:{_e(employee["email"])}">{_e(employee["email"])}</a></p><dl>{items}</dl>'
        f"{actions}</article>"
    )
    return layout(site, employee["name"], body)


def _form_token(token):
    return f'<input type="hidden" name="form_token" value="{_e(token)}">'


def delete_confirm(site, employee, csrf_token, form_token):
    employee_id = employee["id"]
    body = (
        f'<h1>Delete <span dir="auto">{_e(employee["name"])}</span>?</h1>'
        "<p>The employee and their photo are removed from the directory. This cannot be undone.</p>"
        f'<form class="actions" method="post" action="/employees/{employee_id}/delete">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">{_form_token(form_token)}'
        '<button class="danger" type="submit">Delete</button>'
        f'<a class="button secondary" href="/employees/{employee_id}">Cancel</a></form>'
    )
    return layout(site, f"Delete {employee['name']}", body)


def _error(field, message):
    # Always present, so that the page's script can put a message there.
    return f'<p class="error" id="{field}-error">{_e(message or "")}</p>'


def employee_form(site, csrf_token, values, errors, employee_id=None, max_photo_bytes=0, form_token="", notice=None):
    """The add form (``employee_id`` None) or the edit form, showing ``errors``."""
    if employee_id is None:
        action, heading, back = "/employees", "Add employee", "/"
    else:
        action, heading, back = f"/employees/{employee_id}", "Edit employee", f"/employees/{employee_id}"
    inputs = []
    for field, (label, max_length) in FIELDS.items():
        message = errors.get(field)
        kind = "email" if field == "email" else "text"
        direction = "" if field == "email" else ' dir="auto"'
        invalid = ' aria-invalid="true"' if message else ""
        inputs.append(
            f'<label for="{field}">{_e(label)}</label>'
            f'<input id="{field}" name="{field}" type="{kind}" maxlength="{max_length}" required'
            f' autocomplete="{_AUTOCOMPLETE[field]}" value="{_e(values.get(field, ""))}"{direction}'
            f' aria-describedby="{field}-error"{invalid}>'
            f"{_error(field, message)}"
        )
    banner = ""
    if errors:
        banner = '<p class="error banner" role="alert">Please correct the errors below.</p>'
    elif notice:
        banner = f'<p class="flash" role="status">{_e(notice)}</p>'
    limit = human_size(max_photo_bytes)
    photo_invalid = ' aria-invalid="true"' if errors.get("photo") else ""
    body = (
        f"<h1>{heading}</h1>{banner}"
        # novalidate: the page's script (or else the server) shows every field's error at once, where the
        # browser's own check would show one at a time.
        f'<form class="edit" method="post" action="{action}" enctype="multipart/form-data" novalidate>'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">{_form_token(form_token)}{"".join(inputs)}'
        '<label for="photo">Photo</label>'
        f'<p class="hint" id="photo-hint">JPEG, PNG, GIF or WebP, up to {_e(limit)}.</p>'
        '<input id="photo" name="photo" type="file" accept="image/jpeg,image/png,image/gif,image/webp"'
        f' aria-describedby="photo-hint photo-error" data-max-bytes="{int(max_photo_bytes)}"'
        f' data-max-size="{_e(limit)}"{photo_invalid}>'
        f"{_error('photo', errors.get('photo'))}"
        '<div class="actions"><button type="submit">Save</button>'
        f'<a class="button secondary" href="{back}">Cancel</a></div></form>'
    )
    return layout(site, heading, body)


def signin_form(site, csrf_token, target, back, error, configured, draft=None, why=None):
    notice = f'<p class="flash" role="status">{_e(why)}</p>' if why else ""
    if not configured:
        notice = '<p class="error banner">No administrator password is set on this server yet.</p>'
    message = ""
    described = ""
    if error:
        message = f'<p class="error" id="signin-error" role="alert">{_e(error)}</p>'
        described = ' aria-invalid="true" aria-describedby="signin-error"'
    body = (
        f"<h1>Sign in</h1>{notice}"
        "<p>Anyone may read the directory; adding, changing and deleting employees needs the administrator.</p>"
        '<form class="edit" method="post" action="/signin">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        f'<input type="hidden" name="next" value="{_e(target)}">'
        f'<input type="hidden" name="back" value="{_e(back)}">'
        + "".join(f'<input type="hidden" name="draft_{_e(k)}" value="{_e(v)}">' for k, v in (draft or {}).items())
        + '<label for="username">User name</label>'
        '<input id="username" name="username" type="text" value="admin" required autocomplete="username"'
        ' autocapitalize="none" spellcheck="false">'
        '<label for="password">Password</label>'
        f'<input id="password" name="password" type="password" required autocomplete="current-password"{described}>'
        f"{message}"
        '<div class="actions"><button type="submit">Sign in</button>'
        f'<a class="button secondary" href="{_e(back)}">Cancel</a></div></form>'
    )
    return layout(site, "Sign in", body)


def error_page(site, status, title, message):
    body = f'<h1>{status} · {_e(title)}</h1><p>{_e(message)}</p><p><a href="/">Back to the directory</a></p>'
    if status == 403 and not site.get("admin"):
        body += f'<p><a href="{_e(signin_url(site.get("here")))}">Sign in</a></p>'
    return layout(site, title, body)


def human_size(size):
    """Sizes as the form states them: MiB from 1 MiB up (one decimal at most), KiB or bytes below."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MiB"
    if size >= 1024:
        return f"{size // 1024} KiB"
    return f"{size} bytes"
