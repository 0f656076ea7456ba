"""Stand-in for the pip bootstrap script ansible-test downloads from a host this project cannot reach.

ansible-test runs it inside each sanity virtualenv it creates, with pip's install options and the
pinned packages as arguments. The standard library's ensurepip installs pip; that pip then installs
the pinned packages from the package index as ansible-test asked.
"""

from __future__ import annotations

import runpy
import subprocess
import sys

# In a child process: ensurepip.bootstrap() would point PIP_CONFIG_FILE at /dev/null in this one,
# and the pip run below must read the machine's pip configuration (index, certificates).
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
