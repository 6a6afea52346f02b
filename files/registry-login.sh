# The login lab nodes pull from the hub server's registry with, on the hub server, root only
# (labhub/node_registry.py): a generated password, its bcrypt hash for the proxy, and the Docker
# client configuration that logs in with it. Run by labhub's deploy (tasks/hub.py):
#
#   registry-login.sh check|write PASSWORD ENV CONFIG VARIABLE USER PROXY_IMAGE BEFORE AFTER \
#       PROJECT SERVICE
#
# check prints what is missing or stale, one word a line (password, proxy-env, docker-config),
# and never a secret; write makes exactly those. The password is never on a command line: it
# goes from its file through pipes. BEFORE and AFTER are the configuration's JSON around its
# auth value (dumped by labhub), which is base64 and needs no escaping.
set -eu
umask 077
mode=$1 password=$2 env=$3 config=$4 variable=$5 user=$6 image=$7 before=$8 after=$9
project=${10} service=${11}

expected_config() {
    printf '%s%s%s' "$before" "$(printf '%s:%s' "$user" "$(cat "$password")" | base64 -w0)" \
        "$after"
}

missing() {
    [ -s "$password" ] || echo password
    # A hash made before the password (a new password) is stale.
    if [ ! -s "$env" ] || [ ! -s "$password" ] || [ "$password" -nt "$env" ]; then
        echo proxy-env
    fi
    if [ ! -s "$password" ] || [ ! -f "$config" ] ||
        [ "$(expected_config | sha256sum)" != "$(sha256sum < "$config")" ]; then
        echo docker-config
    fi
}

if [ "$mode" = check ]; then
    missing
    exit 0
fi

todo=$(missing)
for dir in "$(dirname "$password")" "$(dirname "$env")" "$(dirname "$config")"; do
    install -d -m 0700 "$dir"
done
case $todo in *password*)
    # 40 letters and digits: about 238 bits, and nothing any format must escape.
    tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 40 > "$password.new"
    mv "$password.new" "$password"
    todo="$todo proxy-env docker-config" ;;
esac
case $todo in *proxy-env*)
    # The proxy image's own hash (bcrypt); Caddy 2.6 wants it base64-encoded in its JSON,
    # later releases take either, so it is always written encoded.
    hash=$(printf '%s\n' "$(cat "$password")" |
        docker run --rm -i --network none --entrypoint caddy "$image" hash-password)
    case $hash in '$'*) hash=$(printf '%s' "$hash" | base64 -w0) ;; esac
    [ -n "$hash" ] || { echo "the proxy image $image made no password hash" >&2; exit 1; }
    printf '%s=%s\n' "$variable" "$hash" > "$env.new"
    mv "$env.new" "$env"
    # A running proxy reads it when it starts: a new password needs a new start.
    for proxy in $(docker ps -q --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.service=$service"); do
        docker restart "$proxy" > /dev/null
    done ;;
esac
case $todo in *docker-config*)
    expected_config > "$config.new"
    mv "$config.new" "$config" ;;
esac
echo "made: $(echo $todo)"
