"""Request bodies of HTML forms: urlencoded and multipart/form-data.

Python 3.13 removed the ``cgi`` module, so multipart bodies are parsed with
the standard ``email`` package, which handles MIME the same on 3.11 and 3.13.
"""

import email.parser
import email.policy
import urllib.parse


class FormError(ValueError):
    """The body is not a well-formed form."""


class Upload:
    def __init__(self, filename, media_type, data):
        self.filename = filename
        self.media_type = media_type
        self.data = data


def parse_form(content_type, body, max_fields=50):
    """Return (fields, uploads): text fields by name, and non-empty file uploads by name."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=max_fields
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormError("The form data could not be read.") from exc
        return dict(pairs), {}
    if media_type == "multipart/form-data":
        return _parse_multipart(content_type, body, max_fields)
    raise FormError("Forms must be sent as application/x-www-form-urlencoded or multipart/form-data.")


def _parse_multipart(content_type, body, max_fields):
    header = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    if not message.is_multipart() or message.defects:
        raise FormError("The multipart form data could not be read.")
    fields = {}
    uploads = {}
    parts = message.get_payload()
    if len(parts) > max_fields:
        raise FormError("The form has too many fields.")
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            if payload:
                uploads[name] = Upload(filename, part.get_content_type(), payload)
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            fields[name] = payload.decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise FormError(f"Form field {name!r} is not valid text.") from exc
    return fields, uploads
