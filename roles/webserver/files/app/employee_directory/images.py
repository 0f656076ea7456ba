"""Photos: recognise the accepted formats by their first bytes, then shrink and re-encode on the server.

A phone's photo (3 to 8 MB, thousands of pixels a side, turned by an EXIF tag, with the place it was taken in
its metadata) becomes a small image of at most ``max_px`` a side, the right way up, without its metadata: the
directory stores and serves only that. Pillow is Debian's python3-pil on the hosts.
"""

import io

from PIL import Image, ImageOps

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# HEIF brands (an iPhone's HEIC photos among them) that Debian's Pillow cannot read.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
HEIC_MEDIA_TYPES = ("image/heic", "image/heif")
HEIC_REFUSED = (
    "HEIC photos are not supported: choose a JPEG, PNG, GIF or WebP photo"
    " (on an iPhone: Settings > Camera > Formats > Most Compatible)."
)
UNREADABLE = "The photo could not be read: choose a JPEG, PNG, GIF or WebP image."
# More pixels than any phone's camera takes: a larger image is refused before it is decoded (a "pixel bomb").
MAX_PIXELS = 50_000_000
JPEG_QUALITY = 85


class PhotoError(ValueError):
    """The photo cannot be used; the message says why in one line."""


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


def is_heif(data):
    """Whether ``data`` is a HEIF file (HEIC and its kin): an ISO media file whose brand says so."""
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def shrink(data, max_px):
    """(bytes, media type) of the photo ``data`` at most ``max_px`` a side: turned as its EXIF says, without its
    metadata (the colour profile stays), JPEG, or PNG when it has transparency. PhotoError when it is unusable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                size = f"{image.width} x {image.height}"
                raise PhotoError(f"The photo has too many pixels ({size}): choose a smaller one.")
            # A JPEG decodes straight to a fraction of its size, close above the size wanted: much less work.
            image.draft("RGB", (max_px, max_px))
            icc_profile = image.info.get("icc_profile")
            upright = ImageOps.exif_transpose(image)
            transparent = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            small = upright.convert("RGBA" if transparent else "RGB")
    except PhotoError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(UNREADABLE) from exc
    small.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    # Only what is given here is written: no EXIF (nor the GPS position in it), comments or other chunks.
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    out = io.BytesIO()
    if transparent:
        small.save(out, "PNG", optimize=True, **extra)
        return out.getvalue(), "image/png"
    small.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, **extra)
    return out.getvalue(), "image/jpeg"
