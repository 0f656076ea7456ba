"""Entry point for gunicorn: ``employee_directory.wsgi:application``.

Settings come from the JSON file named by EMPLOYEE_DIRECTORY_CONFIG.
"""

import os

from .web import Application, load_config

application = Application(
    load_config(os.environ.get("EMPLOYEE_DIRECTORY_CONFIG", "/etc/employee-directory/config.json"))
)
