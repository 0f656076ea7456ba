# Installs the packages named in the arguments, run on the host by /bin/sh -c (the role's command task) only when
# dpkg-query found some missing: refreshes apt's package lists, then installs them in one transaction without
# recommended packages. apt-get itself, not the apt module: the module opens python-apt's cache (about 1 CPU-s
# each time on a small instance) on top of what apt-get does. The lists are fetched without translations and kept
# compressed (about 0.7 CPU-s less, 19 MB instead of 84 MB on Debian 12); these options hold for this run only.
# dpkg unpacks without a sync before each rename (force-unsafe-io, as Debian's container images do): it matters
# only if the machine loses power in the middle of this first install, and such an instance is replaced, not
# repaired. Configuration files a package ships are taken as they are, never asked about. On a first boot, Debian's
# apt-daily timers may hold apt's lock: it is waited for (2 minutes at most), as the apt module waits.
set -eu
export DEBIAN_FRONTEND=noninteractive
lists="-o Acquire::Languages=none -o Acquire::GzipIndexes=true -o Acquire::CompressionTypes::Order::=gz"
lock="-o DPkg::Lock::Timeout=120"
# shellcheck disable=SC2086 # $lists and $lock are lists of options
apt-get -q $lock $lists update
# shellcheck disable=SC2086
apt-get -q -y $lock $lists --no-install-recommends -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io install "$@"
