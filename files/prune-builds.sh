#!/bin/sh
# Removes older builds of an image after a build (labhub/operations/images.py, built): the new
# one and the one before it (the rollback target) stay, and so does any image a container uses.
#
#   prune-builds.sh LABEL CURRENT_IMAGE BUILT_IMAGES_FILE
label=$1 current=$2 built=$3
current_id=$(docker image inspect --format '{{.Id}}' "$current" 2>/dev/null || true)
used=$(docker ps -aq --no-trunc | xargs -r docker container inspect --format '{{.Image}}')
labelled=$(docker images --no-trunc --filter "label=$label" --format '{{.ID}}')
previous=
# Newest build first, in the order the builds were recorded: an image's creation time says
# nothing when a build was all cache.
for id in $(tac "$built" 2>/dev/null | awk '!seen[$0]++'); do
    [ "$id" = "$current_id" ] && continue
    printf '%s\n' "$labelled" | grep -qxF "$id" || continue
    if [ -z "$previous" ]; then previous=$id; echo "kept $id: the previous build"; continue; fi
    if printf '%s\n' "$used" | grep -qxF "$id"; then echo "kept $id: a container uses it"; continue; fi
    tags=$(docker image inspect --format '{{range .RepoTags}}{{.}} {{end}}' "$id")
    docker image rm ${tags:-$id} >/dev/null && echo "removed $id ${tags}"
done
true
