"""Recognise the photo formats the directory accepts by their first bytes."""

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def detect_image_type(data):
    """Return the media type of ``data`` if it is an accepted image, else None.

    The declared Content-Type of an upload is never trusted alone: a file is
    served back with the type its bytes prove.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
