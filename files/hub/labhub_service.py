"""
The lab hub's spawner with lab nodes: each lab a Docker Swarm service of one task, placed by the
user's group (lab_placement), otherwise the same lab as on one server (labhub_lab.LabSpawner:
the image's command checked, the server waited for, failures named).

DockerSpawner's SwarmSpawner (14.0, unchanged since 2021) is the base; what it gets wrong for
labhub is done here, the pure parts in labhub_swarm.py:

- every volume a bind mount (dockerspawner#536): host paths are binds, names named volumes;
- the user: ``extra_create_kwargs`` (one server's ``user``) is passed to ``create_service``,
  which takes no such argument (#497), and ``group_add`` is dropped: the user and groups go in
  the container spec;
- a task the swarm refuses (no node meets the placement, a node cannot pull the image) is
  "pending" or "rejected", which SwarmSpawner waits on until the spawn times out: here it fails
  the spawn at once, saying why, naming the group and its constraints for a placement;
- a task that stops is retried by the swarm for ever (restart condition "any"): a lab that
  stops stays stopped, as a container does;
- a lab killed for memory is told (the hub's log, the user's pages), as on one server: its task
  failed with exit code 137 and a memory limit; where the task ran on the hub server's own
  engine, its container's OOMKilled says for sure. (A kernel killed for memory while the lab
  runs on is not seen: the swarm reports only the lab's main process.)
- names over 63 characters, which swarm refuses;
- endpoint mode ``dnsrr``: a service's virtual IP needs the kernel's IPVS, which not every
  server has; the hub reaches the lab at its task's address on the swarm's network (not by the
  service's name, which the hub's resolver caches for the engine DNS's 600 s, past a new lab);
- the limits of the user's groups as the service's resources (reservations for guarantees,
  GPUs as generic resources), and the image from the registry as the nodes reach it;
- the task's states on the spawn page (labhub_progress.task_step): placed, pulling on its node,
  starting;
- the user's account in the lab's /etc/passwd and /etc/group: one server writes them into the
  created container; a service has no container before its node starts it, so they are swarm
  configs, made from the image's own files (read from a container created, never started, on
  the hub server's engine) with the account added (labhub_spawn.account_files).
"""

from __future__ import annotations

import asyncio

from docker.errors import APIError, NotFound
from docker.types import (
    ConfigReference,
    ContainerSpec,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    TaskTemplate,
)
from dockerspawner import SwarmSpawner
from labhub_lab import LabImageError, LabSpawner
from labhub_progress import CREATE, task_step
from labhub_spawn import (
    SpawnRefused,
    account_files,
    format_size,
    image_name,
    lab_security,
    oom_notice,
    service_resources,
    service_security,
)
from labhub_swarm import (
    config_name,
    container_user,
    current_task,
    exit_code,
    memory_killed,
    mounts,
    node_image,
    refusal_message,
    service_name,
    task_address,
    task_outcome,
)
from tornado import web
from traitlets import Dict, Unicode, default

# Labels on what the spawner makes in the swarm, to find them again.
USER_LABEL = "org.labhub.hub-user"


class LabRefusedError(web.HTTPError):
    """A spawn the swarm refused: the message is shown on the spawn page (see LabImageError)."""

    def __init__(self, message: str):
        super().__init__(500, message.replace("%", "%%"))
        self.jupyterhub_message = message


class LabServiceSpawner(SwarmSpawner, LabSpawner):
    # SwarmSpawner first: its service methods replace the container ones; LabSpawner's start
    # (the server waited for) and get_command (an image without a command refused) stay.

    lab_placement = Dict(
        config=True,
        help="Hub user -> {group, constraints}: where the user's labs may run (lab_placement).",
    )

    lab_registry = Unicode(
        config=True, help="The registry's address on the hub server, as lab images name it."
    )
    node_registry = Unicode(
        config=True, help="The same registry's address as the lab nodes pull from it."
    )

    @default("object_name")
    def _object_name_default(self):
        return service_name(super()._object_name_default())

    @property
    def placement(self) -> dict | None:
        return self.lab_placement.get(self.user.name)

    async def create_object(self):
        self._spawn_step(CREATE, "Creating the lab's swarm service")
        configs = await asyncio.get_running_loop().run_in_executor(
            self.executor, self._account_configs
        )
        container = dict(
            # The nodes pull from the hub server's registry as they reach it (tasks/node_images).
            image=node_image(self.image, self.lab_registry, self.node_registry),
            args=await self.get_command(),
            env=self.get_env(),
            mounts=[Mount(**mount) for mount in mounts(self.volume_binds)],
            configs=configs,
            labels={USER_LABEL: self.user.name},
        )
        if self.lab_account:
            container.update(container_user(self.lab_account))
        container.update(self.extra_container_spec)
        # The limits, guarantees (as reservations) and GPUs of the user's groups.
        try:
            resources = service_resources(self.lab_resources) if self.lab_resources else {}
        except SpawnRefused as e:
            raise LabRefusedError(f"Your lab cannot start: {e}.") from None
        resources.update(self.extra_resources_spec)
        placement = dict(
            constraints=list(self.placement["constraints"]) if self.placement else None
        )
        placement.update(self.extra_placement_spec)
        # No capability, no new privileges, a process limit (the engine filter requires them).
        spec, limits = service_security(self.lab_pids_limit)
        container_spec = ContainerSpec(**container)
        container_spec.update(spec)
        resources = Resources(**resources)
        resources.setdefault("Limits", {}).update(limits)
        task = dict(
            container_spec=container_spec,
            resources=resources,
            # A lab that stops stays stopped, as its container does on one server.
            restart_policy=RestartPolicy(condition="none"),
            networks=[self.network_name],
            placement=Placement(**placement),
        )
        task.update(self.extra_task_spec)
        endpoint = {"mode": "dnsrr", **self.extra_endpoint_spec}
        return await self.docker(
            "create_service",
            TaskTemplate(**task),
            name=self.service_name,
            labels={USER_LABEL: self.user.name},
            endpoint_spec=EndpointSpec(**endpoint),
        )

    def _account_configs(self) -> list[ConfigReference]:
        """/etc/passwd and /etc/group naming the lab's user, as swarm configs over the image's."""
        if not self.lab_account:
            return []
        # Never started; made as a lab is, since the engine filter takes no other container.
        reader = self.client.create_container(
            self.image,
            command=["true"],
            labels={USER_LABEL: self.user.name},
            user=container_user(self.lab_account)["user"],
            host_config=self.client.create_host_config(
                network_mode="none", **lab_security(self.lab_pids_limit)
            ),
        )
        try:
            texts = [self._read_file(reader["Id"], p) for p in ("/etc/passwd", "/etc/group")]
        finally:
            self.client.remove_container(reader["Id"], force=True)
        references = []
        for kind, text in zip(("passwd", "group"), account_files(*texts, self.lab_account)):
            name = config_name(kind, text)
            try:
                config = self.client.create_config(
                    name, text.encode(), labels={USER_LABEL: self.user.name}
                )["ID"]
            except APIError as e:
                if e.status_code != 409:  # made by an earlier spawn: the same content
                    raise
                found = self.client.configs(filters={"name": name})
                config = next(c["ID"] for c in found if c["Spec"]["Name"] == name)
            references.append(
                ConfigReference(config, name, filename=f"/etc/{kind}", uid="0", gid="0", mode=0o444)
            )
        return references

    async def get_task(self):
        """The lab's task; None when its service is gone, {} before the swarm has made one."""
        if await self.get_object() is None:
            return None
        try:
            tasks = await self.docker("tasks", filters={"service": self.service_name})
        except NotFound:
            return None
        return current_task(tasks) or {}

    async def start_object(self):
        """Until the lab's task runs; a task the swarm refuses or that stops fails the spawn."""
        delay, told = 0.5, None
        while True:
            task = await self.get_task()
            if task is None:
                raise LabRefusedError(f"The lab's service {self.service_name} is gone.")
            told = await self._task_step(task, told)
            outcome = task_outcome(task) if task else "starting"
            if outcome == "running":
                return
            if outcome == "refused":
                message = refusal_message(
                    task, image_name(self.image), self.placement, await self._node_name(task)
                )
                self.log.warning("%s: %s", self.service_name, message)
                # JupyterHub stops only a lab that polls as running: a refused one would stay
                # in the swarm, retried, and start when a node came that nobody waits for.
                await self.remove_object()
                raise LabRefusedError(message)
            if outcome == "stopped" and await self._tell_memory_killed(task):
                # LabSpawner.start says so, once it polls: the limit, not the image, is why.
                return
            if outcome == "stopped":
                await self.remove_object()
                code = exit_code(task)
                raise LabImageError(
                    self.image,
                    "its container stopped at once"
                    if not code
                    else f"its container stopped ({code})",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5)

    async def get_ip_and_port(self):
        task = await self.get_task()
        address = task_address(task or {}, self.network_name)
        if address is None:
            raise LabRefusedError(
                f"The lab's task has no address on the network {self.network_name}."
            )
        return address, self.port

    async def _task_step(self, task: dict, told: str | None) -> str | None:
        """The spawn page's step for the task's state, once a state; the state told."""
        state = (task.get("Status") or {}).get("State")
        if state != told:
            step = task_step(state, image_name(self.image), await self._node_name(task))
            if step:
                self._spawn_step(*step)
        return state

    async def _node_name(self, task: dict) -> str | None:
        if not task.get("NodeID"):
            return None
        try:
            node = await self.docker("inspect_node", task["NodeID"])
        except APIError:
            return task["NodeID"]
        return node["Description"]["Hostname"]

    async def poll(self):
        task = await self.get_task()
        if task is None:
            return 0
        if not task or task_outcome(task) in ("running", "starting"):
            return None
        await self._tell_memory_killed(task)
        return exit_code(task) or (task.get("Status") or {}).get("Err") or 0

    async def _tell_memory_killed(self, task: dict) -> bool:
        """Whether the lab's stopped task was killed for memory; told once (the hub's log, the
        user's pages: lab_notice)."""
        limit = memory_killed(task)
        if not limit:
            return False
        state = {"OOMKilled": True, "Running": False}
        container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        try:  # the task ran on the hub server's own engine: its container says for sure
            state = (await self.docker("inspect_container", container))["State"]
        except APIError:  # on another node
            pass
        notice = oom_notice(state, limit)
        if notice and self._told != (task["ID"], False):
            self._told = (task["ID"], False)
            self.lab_notice = notice
            self.log.warning(
                "%s's lab %s hit its memory limit (%s): the kernel killed its main process, the "
                "lab stopped (task failed on node %s, exit code %s)",
                self.user.name,
                self.service_name,
                format_size(limit),
                await self._node_name(task),
                exit_code(task),
            )
        return notice is not None

    async def remove_object(self):
        service = await self.get_object()
        configs = []
        if service is not None:
            spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
            configs = [c["ConfigID"] for c in spec.get("Configs") or ()]
        try:
            await self.docker("remove_service", self.service_name)
        except NotFound:
            pass
        for config in configs:
            try:
                await self.docker("remove_config", config)
            except APIError as e:  # still used by another of the user's labs
                self.log.debug("config %s kept: %s", config, e)
