#!/bin/sh
# Builds the stand-in of Docker's apt repository under $1, laid out like download.docker.com:
#   $1/linux/debian/gpg                        the signing key, ASCII armored
#   $1/linux/debian/dists/<codename>/...       Release, InRelease, Release.gpg, stable/binary-<arch>
# and a copy of it under $1/another-key/linux/debian that publishes the same key but is signed
# with another one, as a tampered mirror would be, and one under $1/rotated/linux/debian signed
# with that other key and publishing it, as a repository after a key rotation (or another
# mirror with its own key) would be. Both keys are made here, without passphrase:
# they exist only in this image's build and never leave this machine.
#
# Its packages are Debian's engine, CLI, containerd, compose v2 and buildx under Docker's names
# and version scheme. They are Debian's packages repacked, not metapackages that depend on them:
# Debian's docker.io and docker-cli conflict with docker-ce and docker-ce-cli, so a package of
# that name cannot pull them in. Each conflicts with and replaces its Debian counterpart, as
# Docker's packages do.
set -eu
www=$1
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
release=$(. /etc/os-release && echo "$VERSION_ID")
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
debs="$work/debs"
mkdir "$debs"

upstream() {  # the upstream part of a Debian package's version: 26.1.5+dfsg1-9+b1 -> 26.1.5
    dpkg-deb --field "$1" Version | sed -e 's/^[0-9]*://' -e 's/[+~-].*//'
}

deb_of() {
    ls "$work/$1"_*.deb
}

repack() {  # repack DEBIAN_NAME DOCKER_NAME DOCKER_VERSION [DEPENDS]
    deb=$(deb_of "$1")
    tree="$work/$2"
    dpkg-deb --raw-extract "$deb" "$tree"
    {
        echo "Package: $2"
        echo "Version: $3"
        dpkg-deb --field "$deb" Architecture Installed-Size Pre-Depends Section Priority Homepage
        echo "Maintainer: labhub tests <labhub-tests@localhost>"
        depends=${4:-$(dpkg-deb --field "$deb" Depends)}
        [ -z "$depends" ] || echo "Depends: $depends"
        echo "Conflicts: $1"
        echo "Replaces: $1"
        echo "Description: stand-in of Docker's $2 for labhub's tests"
        echo " Debian's $1 $(dpkg-deb --field "$deb" Version) under the name Docker's repository uses."
    } > "$tree/DEBIAN/control"
    dpkg-deb --build -Zgzip "$tree" "$debs/" >/dev/null
}

apt-get update -qq
(cd "$work" && apt-get download docker.io docker-cli containerd docker-compose docker-buildx >/dev/null)
suffix="-1~debian.$release~$codename"
engine="5:$(upstream "$(deb_of docker.io)")$suffix"
# docker.io's dependencies, with Docker's containerd.io for containerd, and Docker's CLI.
depends=$(dpkg-deb --field "$(deb_of docker.io)" Depends | sed 's/containerd ([^)]*)/containerd.io/')
repack docker.io docker-ce "$engine" "$depends, docker-ce-cli"
repack docker-cli docker-ce-cli "$engine"
repack containerd containerd.io "$(upstream "$(deb_of containerd)")-1"
repack docker-compose docker-compose-plugin "$(upstream "$(deb_of docker-compose)")$suffix"
repack docker-buildx docker-buildx-plugin "$(upstream "$(deb_of docker-buildx)")$suffix"

export GNUPGHOME="$work/gnupg"
install -d -m 0700 "$GNUPGHOME"
key() {
    gpg --batch --quiet --passphrase '' --quick-gen-key "$1" rsa4096 sign never
    gpg --batch --with-colons --list-keys "$1" | awk -F: '$1 == "fpr" { print $10; exit }'
}
published=$(key "labhub stand-in of Docker's apt repository <labhub-tests@localhost>")
another=$(key "labhub another key <labhub-tests@localhost>")

repository() {  # repository OUTDIR SIGNING_KEY [PUBLISHED_KEY]
    base=$(mktemp -d)
    mkdir "$base/conf"
    cat > "$base/conf/distributions" <<DIST
Origin: Docker
Label: Docker CE
Suite: $codename
Codename: $codename
Architectures: $arch
Components: stable
Description: labhub's stand-in of Docker's apt repository (Debian's packages under Docker's names)
SignWith: $2
DIST
    reprepro --silent --basedir "$base" --outdir "$1" includedeb "$codename" "$debs"/*.deb
    gpg --batch --armor --export "${3:-$published}" > "$1/gpg"
}
repository "$www/linux/debian" "$published"
repository "$www/another-key/linux/debian" "$another"
repository "$www/rotated/linux/debian" "$another" "$another"
# The same package files: apt never gets to them from a repository it refuses.
for copy in another-key rotated; do
    rm -r "$www/$copy/linux/debian/pool"
    ln -s ../../../linux/debian/pool "$www/$copy/linux/debian/pool"
done
gpgconf --kill gpg-agent
rm -rf "$work" /var/lib/apt/lists/*
