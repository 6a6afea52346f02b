#!/bin/bash
# The hub moved to a new image (labhub/operations/hub_database.py, upgraded): its database is
# copied while the hub is stopped, JupyterHub's own upgrade-db brings it to the new image's schema,
# and the new hub must answer. When any step fails, the database from before goes back and the hub
# runs on its previous image again; the run then fails. Labs are containers of their own and keep
# running.
#
#   hub-upgrade.sh COMPOSE_FILE PROJECT SERVICE PREVIOUS_IMAGE DATA_PATH DATABASE CONFIG
#                  HEALTH_URL WAIT ROLLBACK_FILE ROLLBACK_YAML
#
# Run by labhub.commands.script_command, after labhub's shell functions (labhub_wait,
# labhub_ask, labhub_container, labhub_mount).
set -u
compose_file=$1 project=$2 service=$3 previous=$4 data=$5 database=$6 config=$7 url=$8 wait=$9
rollback_file=${10} rollback_yaml=${11}

compose() { docker compose -f "$compose_file" -p "$project" "$@"; }
container() { labhub_container "$project" "$service"; }
say() { echo "labhub: $*" >&2; }

# The host folder of the hub's state volume, from the container that has it mounted.
folder=$(labhub_mount "$(container)" Source Destination "$data")
if [[ -z $folder || ! -f $folder/$database ]]; then
    say "the hub has no database at $data/$database to upgrade"
    exit 1
fi
saved=$folder/$database.before-upgrade

state() { docker container inspect --format '{{.State.Status}} {{.RestartCount}}' "$(container)"; }
runs() { [[ $(state) == "running 0" ]]; }

# Waits for the hub to answer, asked inside its container (with its curl, as JupyterHub's image
# has): the hub's own port, whatever the proxy in front of it does. Says why not when it does not.
answers() {
    labhub_wait --while runs "$wait" labhub_ask --in "$(container)" "$url"
    case $? in
        0) return 0 ;;
        2) problem="stopped (state: $(state))" ;;
        *) problem="did not answer within $wait s" ;;
    esac
    return 1
}

rollback() {
    say "the hub upgrade failed: $1"
    compose logs --no-color --tail 20 "$service" >&2
    compose stop "$service" >/dev/null 2>&1
    cp -p "$saved" "$folder/$database"
    # The previous image, with the compose file as it is: only the image differs.
    mkdir -p "$(dirname "$rollback_file")"
    printf '%s' "$rollback_yaml" > "$rollback_file"
    docker compose -f "$compose_file" -f "$rollback_file" -p "$project" \
        up --detach --no-deps "$service" >&2
    if answers; then
        say "rolled back: the hub runs its previous image $previous again, with its database" \
            "from before the upgrade (also kept as $saved)"
    else
        say "the rollback to $previous failed too: the previous hub $problem; its database" \
            "from before the upgrade is $saved"
    fi
    exit 1
}

# A stopped hub writes nothing: a plain copy of its database is consistent.
compose stop "$service" || exit 1
cp -p "$folder/$database" "$saved" || exit 1
compose run --rm --no-deps -T "$service" jupyterhub upgrade-db -f "$config" \
    || rollback "jupyterhub upgrade-db failed on the new image"
compose up --detach --no-deps "$service" || rollback "the new hub's container did not start"

answers || rollback "the new hub $problem"
rm -f "$rollback_file"
say "the hub runs its new image; its database from before the upgrade is kept as $saved"
