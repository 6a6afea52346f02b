#!/bin/bash
# The hub moved to a new image (labhub/operations/hub_database.py, upgraded): its database is
# copied while the hub is stopped, JupyterHub's own upgrade-db brings it to the new image's schema,
# and the new hub must answer. When any step fails, the hub goes back whole: the database from
# before, the stack's files from before this run (kept by hub_database.files_kept: the compose
# file naming the previous image, the hub's settings) and the previous image; a mark says so
# (labhub.facts.hub_database) and the run fails. Labs are containers of their own and keep
# running.
#
#   hub-upgrade.sh COMPOSE_FILE PROJECT SERVICE PREVIOUS_IMAGE NEW_IMAGE DATA_PATH DATABASE
#                  CONFIG HEALTH_URL WAIT HUB_DIR PREVIOUS_DIR MARK_FILE
#
# Run by labhub.commands.script_command, after labhub's shell functions (labhub_wait,
# labhub_ask, labhub_container, labhub_mount).
set -u
compose_file=$1 project=$2 service=$3 previous=$4 new=$5 data=$6 database=$7 config=$8 url=$9
wait=${10} hub_dir=${11} previous_dir=${12} mark_file=${13}

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

# What labhub.facts.hub_database.HubRollback reads: one "key=value" a line.
mark() {
    mkdir -p "$(dirname "$mark_file")"
    printf 'at=%s\nprevious=%s\nfailed=%s\nreason=%s\noutcome=%s\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$previous" "$new" "$1" "$2" > "$mark_file"
}

rollback() {
    local reason=$1 kept
    say "the hub upgrade failed: $reason"
    compose logs --no-color --tail 20 "$service" >&2
    compose stop "$service" >/dev/null 2>&1
    cp -p "$saved" "$folder/$database"
    kept=$(cd "$previous_dir" 2>/dev/null && find . -type f -printf '%P\n' | sort | paste -sd ' ')
    # The files as they were: the compose file names the previous image, with its settings.
    [[ -d $previous_dir ]] && cp -a "$previous_dir/." "$hub_dir/"
    compose up --detach --no-deps "$service" >&2
    if answers; then
        mark "$reason" "rolled back"
        say "rolled back: the hub runs its previous image $previous again, with the files" \
            "from before this run in $hub_dir ($kept) and its database from before the" \
            "upgrade (also kept as $saved); this run's changes to the hub are not applied"
    else
        mark "$reason" "rollback failed"
        say "the rollback to $previous failed too: the previous hub $problem; its database" \
            "from before the upgrade is $saved, the files from before this run are back in" \
            "$hub_dir"
    fi
    exit 1
}

# A stopped hub writes nothing: a plain copy of its database is consistent.
compose stop "$service" || exit 1
cp -p "$folder/$database" "$saved" || exit 1
compose run --rm --no-deps -T "$service" jupyterhub upgrade-db -f "$config" \
    || rollback "jupyterhub upgrade-db failed on the new image"
# With the services it depends on (the engine filter it reaches labs through, answering first).
compose up --detach "$service" || rollback "the new hub's container did not start"

answers || rollback "the new hub $problem"
rm -rf "$previous_dir" "$mark_file"
say "the hub runs its new image; its database from before the upgrade is kept as $saved"
