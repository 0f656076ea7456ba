# Installs the app's code from pack_app.py's archive, run on the host by /bin/sh -c (the role's command task):
# $1 the code directory, $2 the archive's SHA-256, $3 install or check; the archive (base64) on stdin.
# Exit 0: this archive is already installed; 3: installed now (or, with check, would be). The new code is
# unpacked into a fresh directory that then replaces the old one, so files the app no longer has go too.
set -eu
dir=$1 sha=$2
if [ -d "$dir/employee_directory" ] && [ "$(cat "$dir/.archive-sha256" 2>/dev/null)" = "$sha" ]; then
  cat >/dev/null; exit 0
fi
if [ "$3" = check ]; then cat >/dev/null; exit 3; fi
mkdir -p -m 0755 "$dir"
new=$(mktemp -d "$dir/.unpack.XXXXXX")
trap 'rm -rf "$new"' EXIT
base64 -d > "$new/app.tar.gz"
echo "$sha  $new/app.tar.gz" | sha256sum --check --status
tar -xzmf "$new/app.tar.gz" -C "$new" --no-same-owner
# Byte-compiled here, as Debian's packages are: the app may not write beside its code, so it would compile it at
# each start (each clone's boot). The bytecode names the final path, for tracebacks.
python3 -m compileall -q -d "$dir/employee_directory" "$new/employee_directory" >/dev/null
rm -rf "$dir/employee_directory.old"
if [ -d "$dir/employee_directory" ]; then mv "$dir/employee_directory" "$dir/employee_directory.old"; fi
mv "$new/employee_directory" "$dir/employee_directory"
rm -rf "$dir/employee_directory.old"
echo "$sha" > "$dir/.archive-sha256"
exit 3
