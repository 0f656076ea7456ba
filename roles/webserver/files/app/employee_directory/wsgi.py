"""Entry point for gunicorn: ``employee_directory.wsgi:application``.

Settings come from the JSON file named by EMPLOYEE_DIRECTORY_CONFIG.
"""

import logging
import os

from .web import Application, load_config

# One line per event on standard error, which systemd keeps in the journal (journalctl -u employee-directory).
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

application = Application(
    load_config(os.environ.get("EMPLOYEE_DIRECTORY_CONFIG", "/etc/employee-directory/config.json"))
)
