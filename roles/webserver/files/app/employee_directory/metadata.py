"""EC2 instance metadata (IMDSv2), read once per process."""

import threading
import time
import urllib.error
import urllib.request

# What the directory shows, keyed by the name it uses, valued by the metadata path.
_ITEMS = {
    "instance_id": "meta-data/instance-id",
    "availability_zone": "meta-data/placement/availability-zone",
}


class InstanceMetadata:
    """Instance ID and availability zone from an IMDSv2 endpoint.

    An answer is kept for the life of the process (an instance never changes
    its ID; a clone is a new process).  When nothing answers, the empty result
    is kept for a while so pages do not wait on every request: ``first_retry``
    seconds after the first failure, twice as long after each further one, at
    most ``retry_after``.  A service that missed one burst (a fleet booting at
    once) is asked again a second later; one that is absent costs one timeout
    a minute.
    """

    def __init__(
        self,
        base_url="http://169.254.169.254",
        timeout=1.0,
        retry_after=60.0,
        clock=time.monotonic,
        first_retry=1.0,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"metadata URL must be http(s), not {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/latest/"
        self.timeout = timeout
        self.retry_after = retry_after
        self.first_retry = min(first_retry, retry_after)
        self.clock = clock
        self._lock = threading.Lock()
        self._result = None
        self._retry_at = 0.0
        self._failures = 0
        # Never through an HTTP proxy from the environment: the service is link-local.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self):
        """A dict with ``instance_id`` and ``availability_zone``, or {} when unknown."""
        with self._lock:
            if self._result is not None:
                return dict(self._result)
            if self.clock() < self._retry_at:
                return {}
            found = self._fetch()
            if found:
                self._result = found
            else:
                wait = min(self.retry_after, self.first_retry * 2 ** min(self._failures, 32))
                self._failures += 1
                self._retry_at = self.clock() + wait
            return dict(found)

    def _open(self, path, method="GET", headers=None):
        # The scheme was checked in __init__: only http(s) reaches urlopen.
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers or {})  # noqa: S310
        with self._opener.open(request, timeout=self.timeout) as response:
            return response.read(4096).decode("ascii", "replace").strip()

    def _fetch(self):
        try:
            token = self._open("api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "300"})
            found = {}
            for name, path in _ITEMS.items():
                value = self._open(path, headers={"X-aws-ec2-metadata-token": token})
                if value:
                    found[name] = value
            return found
        except (OSError, urllib.error.URLError, ValueError):
            return {}
