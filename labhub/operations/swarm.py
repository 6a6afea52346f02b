"""
The lab's Docker Swarm: the hub server its manager, an encrypted overlay network, the lab nodes
its workers with their labels, and nodes no longer in the inventory drained and removed. Paired
with ``labhub.facts.swarm``.
"""

from __future__ import annotations

import json
import shlex
from io import StringIO
from urllib.parse import quote

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.api.util import print_host_combined_output

from labhub.commands import container_command, shell, wait_command
from labhub.facts import read
from labhub.facts.accounts import LoginUser
from labhub.facts.swarm import DockerNetwork, SwarmJoinToken, SwarmLabs, SwarmNodes, state_of
from labhub.pyinfra_api import connector_arguments, is_active, quiet_fact
from labhub.settings import url_host
from labhub.stack import HUB_API_TOKEN_PATH, Stack

# The port a swarm's managers take joins and their workers' traffic on.
MANAGER_PORT = 2377
# Where a joining node's request to its engine (the join token in it) is kept while it joins:
# root's alone, removed at once.
JOIN_REQUEST = "/run/labhub-swarm-join.json"
# How long a drained node's tasks get to stop before it is removed anyway.
DRAIN_SECONDS = 300


@operation()
def manager(advertise_address: str):
    """
    This engine manages a swarm: ``docker swarm init`` when it is in none. An engine that is
    already a manager is left as it is; one that is a worker of a swarm is refused (it would
    have to leave it, and that swarm's services with it).

    + advertise_address: the address the swarm's other nodes reach this engine at

    **Example:**

    .. code:: python

        swarm.manager(name="Manage the lab's swarm", advertise_address="192.0.2.10")
    """
    swarm = state_of(host)
    if swarm["manager"]:
        host.noop(f"manages a swarm (advertised at {swarm['address']})")
        return
    if swarm["state"] != "inactive":
        raise OperationError(
            f"the engine is {swarm['state']} in a swarm it does not manage: the hub server "
            "must be the lab swarm's manager; leave that swarm (docker swarm leave) and deploy "
            "again"
        )
    # Its output is the command a worker joins with, the token in it: never printed.
    yield StringCommand(
        "docker",
        "swarm",
        "init",
        "--advertise-addr",
        QuoteString(advertise_address),
        ">/dev/null",
    )


@operation()
def overlay_network(network: str, encrypted: bool = True):
    """
    An attachable overlay network of the swarm, its traffic encrypted between nodes (IPsec,
    ``--opt encrypted``): the traffic of labs crosses the lab's own network. A network of that
    name made otherwise is refused: it cannot be changed while containers use it.

    + network: the network's name
    + encrypted: whether its traffic is encrypted (off: where the lab's network is trusted, or
      a kernel lacks IPsec's ESP)

    **Example:**

    .. code:: python

        swarm.overlay_network(name="Overlay network labhub-swarm", network="labhub-swarm")
    """
    current = host.get_fact(DockerNetwork, network=network)
    if current is None:
        yield StringCommand(
            "docker",
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            *(("--opt", "encrypted") if encrypted else ()),
            QuoteString(network),
        )
        return
    wrong = [
        what
        for what, right in (
            ("not an overlay network", current["driver"] == "overlay"),
            ("not attachable", current["attachable"]),
            (
                "not encrypted" if encrypted else "encrypted (swarm_encrypted is false)",
                ("encrypted" in current["options"]) == encrypted,
            ),
        )
        if not right
    ]
    if wrong:
        raise OperationError(
            f"network {network} exists but is {', '.join(wrong)}: labhub does not change a "
            f"network containers may use; remove it (docker network rm {network}) and deploy "
            "again"
        )
    host.noop(
        f"network {network} is an attachable{', encrypted' if encrypted else ''} overlay network"
    )


@operation()
def worker(hub: str, advertise_address: str):
    """
    This engine is a worker of the swarm the inventory's host ``hub`` manages. An engine in
    another swarm, or one its manager no longer lists (removed from the swarm), leaves it first.

    The join token is read from the manager when the join runs (the manager may be made earlier
    in the same run) and is never printed nor put on a command line: the join request goes to
    the engine's API through its socket, from a file only root can read, removed at once.

    + hub: the inventory name of the swarm's manager
    + advertise_address: the address the swarm's other nodes reach this engine at

    **Example:**

    .. code:: python

        swarm.worker(name="Join the lab's swarm", hub="hub.example.org",
                     advertise_address="192.0.2.11")
    """
    manager_host = host.state.inventory.get_host(hub)
    own = state_of(host)
    managing = state_of(manager_host)
    members = {node["id"] for node in manager_host.get_fact(SwarmNodes)}
    if (
        own["state"] == "active"
        and managing["manager"]
        and any(m["id"] == managing["node_id"] for m in own["managers"])
        and own["node_id"] in members
    ):
        host.noop(f"a node of the swarm {hub} manages")
        return
    if own["state"] != "inactive":
        yield StringCommand("docker", "swarm", "leave", "--force")
    yield join_command(manager_host, advertise_address)


def join_command(manager_host, advertise_address: str) -> FunctionCommand:
    """The join of this engine to the swarm ``manager_host`` manages, as a command that reads the
    token when it runs. Called inside an operation (it runs with its connector arguments)."""
    arguments = connector_arguments(host)
    login = host.get_fact(LoginUser)

    def run(state, host) -> bool:
        managing = state_of(manager_host)
        token = quiet_fact(manager_host, SwarmJoinToken)
        if not managing["manager"] or not token:
            host.log_styled(
                f"{manager_host.name} manages no swarm: it cannot be joined",
                fg="red",
                log_func=logger.error,
            )
            return False
        manager_address = managing["address"]
        request = {
            "ListenAddr": f"0.0.0.0:{MANAGER_PORT}",
            "AdvertiseAddr": advertise_address,
            "RemoteAddrs": [f"{url_host(manager_address)}:{MANAGER_PORT}"],
            "JoinToken": token,
        }
        # Private from the start, as labhub.operations.secret_files does: the request file root's,
        # the upload's temporary file (the login user uploads first under sudo) the login's.
        temp = host.get_temp_filename()
        ok, output = host.run_shell_command(
            StringCommand(
                "install -m 0600 -o root -g root /dev/null",
                JOIN_REQUEST,
                "&&",
                "install -m 0600 -o",
                QuoteString(login),
                "/dev/null",
                temp,
            ),
            **arguments,
        )
        ok = ok and host.put_file(
            StringIO(json.dumps(request)),
            JOIN_REQUEST,
            remote_temp_filename=temp,
            print_output=False,
            print_input=False,
            **arguments,
        )
        post = (
            "curl --silent --show-error --fail-with-body --unix-socket /var/run/docker.sock "
            f"-H 'Content-Type: application/json' --data @{JOIN_REQUEST} "
            "http://localhost/swarm/join"
        )
        status, output = host.run_shell_command(
            StringCommand(
                f"{post}; joined=$?; rm -f {JOIN_REQUEST} {shlex.quote(temp)}; exit $joined"
            ),
            print_output=state.print_output,
            **arguments,
        )
        if not (ok and status):
            print_host_combined_output(host, output)
            return False
        return True

    return FunctionCommand(run, (), {})


@operation()
def nodes(nodes: dict[str, dict[str, str]], stack: Stack):
    """
    The swarm this engine manages has the inventory's lab nodes, each with exactly its labels;
    workers that are not among them (a node removed from the inventory) leave: the labs running
    there are stopped through the hub (so that it knows them stopped), then the node is drained,
    given time for its other tasks to stop, and removed from the swarm. While a lab node of the
    inventory cannot be asked which swarm node it is (down, or outside ``--limit``), no node is
    removed.

    + nodes: the lab nodes, inventory name to labels
    + stack: the hub's compose project, whose hub stops the labs (``stop_labs_command``)

    **Example:**

    .. code:: python

        swarm.nodes(name="Lab nodes of the swarm", nodes={"gpu1.example.org": {"gpu": "a100"}},
                    stack=Stack.from_settings(settings))
    """
    own = state_of(host)
    members = {node["id"]: node for node in host.get_fact(SwarmNodes)}
    wanted: dict[str, dict[str, str]] = {}
    unknown = []
    for name, labels in nodes.items():
        node_host = host.state.inventory.get_host(name)
        node_id = state_of(node_host)["node_id"] if is_active(node_host) else ""
        if node_id in members:
            wanted[node_id] = labels
        else:
            unknown.append(name)
    changed = False
    for node_id, labels in wanted.items():
        current = members[node_id]["labels"]
        args = [
            f"--label-add={key}={value}"
            for key, value in sorted(labels.items())
            if current.get(key) != value
        ]
        args += [f"--label-rm={key}" for key in sorted(current) if key not in labels]
        if args:
            changed = True
            yield StringCommand(
                "docker", "node", "update", *(QuoteString(a) for a in args), QuoteString(node_id)
            )
    former = [
        node
        for node_id, node in members.items()
        if node_id != own["node_id"] and node["role"] == "worker" and node_id not in wanted
    ]
    if former and unknown:
        host.log(
            f"not removing {len(former)} swarm node(s) while lab node(s) "
            f"{', '.join(unknown)} are not in the swarm or cannot be asked",
            logger.warning,
        )
        former = []
    labs = read(host, SwarmLabs) if former else []
    for node in former:
        changed = True
        users = sorted({lab["user"] for lab in labs if lab["node_id"] == node["id"]})
        if users:
            host.log(
                f"node {node['hostname']} leaves the swarm: stopping the labs of "
                f"{', '.join(users)} there through the hub"
            )
            yield StringCommand(stop_labs_command(stack, users))
        node_id = shlex.quote(node["id"])
        running = f"docker node ps --format '{{{{.CurrentState}}}}' {node_id} | grep -q '^Running'"
        yield StringCommand(
            f"docker node update --availability drain {node_id} >/dev/null && "
            f"timeout {DRAIN_SECONDS} sh -c {shlex.quote(f'while {running}; do sleep 1; done')}; "
            f"docker node rm --force {node_id}"
        )
    if not changed:
        host.noop("the swarm has the lab nodes, with their labels")


# How long the hub gets to stop each lab of a node that leaves.
STOP_SECONDS = 120


def stop_labs_command(stack: Stack, users: list[str]) -> str:
    """
    Shell: the labs of ``users`` stopped through the hub's REST API (``DELETE
    /hub/api/users/<name>/server``, asked again while the hub answers 202, stopping), from inside
    the hub's container, with the deploy's token (``labhub.stack.HUB_API_TOKEN_PATH``). The token
    is read there and handed to curl on its standard input: never printed, never on a command
    line. Fails, saying what the hub answered, when the hub does not answer or refuses.
    """
    # Runs in the hub's container: $0 the token's file, $1 the URL; prints the status.
    ask = (
        'printf \'header = "Authorization: token %s"\\n\' "$(cat "$0")" | '
        "curl -s -o /dev/null -w '%{http_code}' --max-time 30 -K - -X DELETE \"$1\""
    )
    lines = [
        f"hub=$({container_command(stack.project, stack.hub_service)})",
        '[ -n "$hub" ] || { echo "the hub is not running: it cannot stop the labs" >&2; exit 1; }',
        'labhub_stopped() { code=$(docker exec "$hub" sh -c '
        + f'{shlex.quote(ask)} {shlex.quote(HUB_API_TOKEN_PATH)} "$url"); '
        '[ "$code" = 204 ] || [ "$code" = 404 ]; }',
        'labhub_stopping() { [ "$code" = 202 ]; }',
    ]
    for user in users:
        url = f"{stack.hub.api_url}/users/{quote(user, safe='')}/server"
        said = shlex.quote(f"the hub did not stop the lab of {user}: it answered ")
        lines += [
            f"url={shlex.quote(url)}",
            f"{wait_command(STOP_SECONDS, 'labhub_stopped', alive='labhub_stopping')} || "
            f'{{ echo {said}"$code to DELETE $url" >&2; exit 1; }}',
            f"echo {shlex.quote(f'stopped the lab of {user} through the hub')}",
        ]
    return shell(*lines)
