"""Image catalogues for moto (the JSON file that ``MOTO_AMIS_PATH`` names): one builder for tests and bench.

moto loads the file in place of its own catalogue of about 1,300 images, so a test or a benchmark knows
exactly which images exist. Used by tests/integration/conftest.py (and through it tests/reliability) and by
bench/cases.py.
"""

from __future__ import annotations

import json


class ImageCatalogue:
    """Images added one at a time with ``add``, given IDs ``ami-<serial in hex>`` from ``first_serial`` on."""

    def __init__(self, first_serial=1):
        self.images = []
        self._serial = first_serial

    def add(self, owner, name, architecture, created, tags=None, description=""):
        """Add a public, available EBS image of ``owner`` created at ``created`` (``2026-01-15T08:00:00.000Z``)."""
        image = {
            "ami_id": f"ami-{self._serial:017x}",
            "name": name,
            "description": description or name,
            "owner_id": owner,
            "public": True,
            "virtualization_type": "hvm",
            "architecture": architecture,
            "state": "available",
            "root_device_type": "ebs",
            "root_device_name": "/dev/xvda",
            "sriov": "simple",
            "hypervisor": "xen",
            "creation_date": created,
            "tags": dict(tags or {}),
        }
        self._serial += 1
        self.images.append(image)
        return image

    def write(self, path):
        """Write the catalogue for ``MOTO_AMIS_PATH``; return ``path``."""
        path.write_text(json.dumps(self.images))
        return path
