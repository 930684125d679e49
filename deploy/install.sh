#!/bin/sh
# Install healthplane from a source tree into a new virtual environment.
#
#   deploy/install.sh SOURCE PREFIX      e.g. deploy/install.sh . /opt/healthplane
#
# The production install path for systemd hosts (Debian refuses a system-wide
# pip install; a venv under /opt keeps healthplane and its dependencies apart
# from the system's Python) and the install step of the Containerfile.
# Needs python3 with venv (Debian: apt-get install python3-venv).
set -eu
if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE PREFIX" >&2
    exit 2
fi
source_dir=$1
prefix=$2
python3 -m venv "$prefix"
"$prefix/bin/pip" install --quiet --no-cache-dir --upgrade pip
"$prefix/bin/pip" install --quiet --no-cache-dir "$source_dir"
"$prefix/bin/healthplane" --version
