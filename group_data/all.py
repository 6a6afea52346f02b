"""
Defaults for every labhub setting, for all hosts. Override them in the inventory (host data),
in another group_data file, or with ``--data name=JSON``. ``labhub/settings.py`` validates them
once per host before anything changes; an unknown or misspelt setting is an error.
"""

# Where Docker comes from: "docker" (Docker's own apt repository, signed keyring) or "distro"
# (the distribution's docker.io and compose v2 packages).
docker_source = "docker"

# Base URL of Docker's apt repository; "/<debian|ubuntu>" is appended. Change it for a mirror.
docker_apt_url = "https://download.docker.com/linux"

# Accounts put in the docker group; None means the SSH login user when it is not root.
docker_users = None

# Hub users: names ("alice") or mappings {"name": "alice", "uid": 2001, "groups": ["leem"]}.
# Each gets host account <user_prefix><name> in group users with a private home in /home; a name
# removed from this list locks that account (home kept), listing it again unlocks it. "uid" pins
# the account's uid (files keep their owner across reinstalls; otherwise an existing account
# keeps its uid); "groups" are host groups that select which shares and lab volumes it gets.
hub_users = []

# Hub users who get JupyterHub admin rights; each must be in hub_users.
hub_admins = []

# Prefix of the host account of each hub user: alice -> jupyter-alice.
user_prefix = "jupyter-"

# CIFS shares: list of mappings with name, source ("//server/share"), mountpoint, mode ("ro" or
# "rw"; rw mounts as uid=0,gid=100,file_mode=0664,dir_mode=0775), credentials (absolute path on
# the admin's machine, outside this repository, readable by its owner alone (chmod 600), of a
# file with username= and password= lines; uploaded to /etc/labhub/credentials/<name>, root
# only), and optional options (extra mount options, overriding those defaults; never the login,
# the source or ro/rw, under any spelling mount.cifs reads), groups (host groups whose users'
# labs get it; default all hub users) and container_path (inside lab containers; relative means
# in the home, default <name>). Each is one fstab line with _netdev,nofail,x-systemd.automount.
shares = []

# Where the hub users' homes (/home/<account>) are, the same on the hub server and every lab node:
# "export": on the hub server's disk, exported over NFS to the lab nodes alone (nothing changes on
#           an inventory without lab_nodes);
# {"nfs": "server:/export"} (optional "options": extra mount options): an existing NFS export;
# {"cifs": {"source": "//server/homes", "credentials": ..., "options": [...]}}: an existing CIFS
#           export, given like a share (credentials uploaded to /etc/labhub/home-credentials).
# An existing export holds one folder per account (/export/jupyter-alice, owned by the account's
# uid: pin uids in hub_users), mounted at the home on every server with one fstab line a home
# (_netdev,nofail,x-systemd.automount).
home_storage = "export"

# Where the hub's compose project, rendered configuration and build contexts live on the host.
hub_dir = "/opt/labhub"

# How the hub gets its HTTPS certificate, served by a proxy (Caddy) in front of the hub:
# "internal": a local CA the proxy makes on the server; hand its root certificate (the deploy
#             says where) to users' browsers;
# "acme":     from an ACME CA (Let's Encrypt by default) for hub_domain, renewed automatically;
#             the CA must reach the server on port 80 or 443 by that name;
# "files":    tls_cert and tls_key, a certificate the lab got (a university CA's);
# "off":      plain HTTP on hub_port, passwords in clear: every run warns.
tls = "internal"

# The DNS name (or, for "internal" and "files", the IP address) users open the hub at; None:
# the server's name in the inventory.
hub_domain = None

# The contact e-mail of the ACME account (tls "acme").
acme_email = None

# The ACME directory (tls "acme"): Let's Encrypt, or any RFC 8555 CA, such as a university's.
acme_directory = "https://acme-v02.api.letsencrypt.org/directory"

# A PEM CA bundle on the admin's machine that the proxy trusts for a private ACME directory's
# own HTTPS (None: the system's CAs).
acme_ca_root = None

# How long a deploy waits for the proxy to obtain its first certificate (tls "acme") before it
# fails, showing the proxy's log: the CA validates the name, which may take a minute or two.
acme_wait = 120

# The certificate chain (server certificate first), a file on the admin's machine (tls "files").
tls_cert = None

# The certificate's key, a file on the admin's machine outside this repository, chmod 600 (tls
# "files"): uploaded root-only, never printed.
tls_key = None

# The HTTPS proxy's image: the official Caddy image.
proxy_image = "caddy:2"

# The proxy's published HTTPS port.
https_port = 443

# The proxy's published HTTP port: redirects to HTTPS, and answers ACME's HTTP challenge.
http_port = 80

# The hub's published port on the host with tls "off" (with HTTPS, only the proxy is published).
hub_port = 8000

# The address the hub's ports (the proxy's, with HTTPS) are published on.
hub_bind = "0.0.0.0"

# Image the hub's Dockerfile starts FROM: the official JupyterHub image, pinned (files/hub pins
# the spawner, authenticator and culler that go with it). A hub deployed on an older one moves to
# it with its database (README: "Backups, restores and upgrades").
hub_base_image = "quay.io/jupyterhub/jupyterhub:6.1.1"

# Shortest password FirstUseAuthenticator accepts on a first login.
min_password_length = 10

# How a declared user's first login sets the password:
# "invite": only through a one-time invitation link the deploy makes for each user with no
#           password yet, valid invite_days; written on the admin's machine (readable by the
#           admin alone) to .labhub/invites/<hub server>/<user>.url, never printed; the server
#           keeps only its hash. A first login without one is refused.
# "open":   the first login of a declared name sets its password, whoever makes it (anyone who
#           guesses the name before the user does owns the account): every run warns.
first_login = "invite"

# Days an invitation is valid. An expired one is made anew only when asked:
# --data reissue_invites='["bob"]'.
invite_days = 7

# Wrong passwords in a row for one name before its logins wait (0: no limit); the hub's log
# names the user and the address of each.
failed_logins = 5

# Seconds the first wait lasts; each further wrong password doubles it (up to an hour).
failed_login_wait = 60

# On demand, on the command line: hub users whose invitation is made anew (the old link no
# longer works): --data reissue_invites='["bob"]'.
reissue_invites = []

# On demand: hub users whose password is removed, so that they set a new one (through a new
# invitation with first_login "invite"); their home and files are kept:
# --data reset_passwords='["bob"]'.
reset_passwords = []

# The private registry's image: the official distribution registry.
registry_image = "registry:2"

# The address the registry is published on; loopback keeps it off the network.
registry_bind = "127.0.0.1"

# The registry's published port.
registry_port = 5000

# With lab nodes (the inventory group lab_nodes): the port of the hub server on which the HTTPS
# proxy serves the registry to the nodes alone (TLS with the hub's certificate, a login labhub
# generates on the hub server; any other address is refused). Published on hub_bind.
node_registry_port = 5443

# Lab images built on the host and pushed to the registry as <registry>/<name>:<version>.
# Each: name, version, optional context (build folder; default files/lab) and base_image.
lab_images = [{"name": "lab", "version": "1.0"}]

# Image each lab build starts FROM unless the image names its own: the official Jupyter image.
lab_base_image = "quay.io/jupyter/base-notebook:2025-01-20"

# Image preselected on the spawn form, as <name>:<version>; None means the first of lab_images.
lab_default_image = None

# Home of the notebook user inside lab containers; the host home is mounted here.
lab_home = "/home/jovyan"

# Extra host folders mounted into labs: host_path, container_path (relative means in the home),
# mode ("ro" or "rw"), optional groups.
lab_volumes = []

# Where each host group's labs run, with lab nodes (the inventory group lab_nodes): group ->
# list of swarm placement constraints, all of which a node must meet, each "<key>==<value>" or
# "<key>!=<value>" with key node.labels.<label> (a node's node_labels), node.hostname, node.id,
# node.role (manager: the hub server, or worker: a lab node), node.platform.os,
# node.platform.arch or engine.labels.<label>. Example: {"gpu": ["node.labels.gpu==a100"],
# "teaching": ["node.role==worker", "node.hostname!=gpu1"]}. A user in no group listed here runs
# anywhere; a user in several runs where the first of them, in this order, says. A placement no
# node meets fails the spawn at once with a message naming the group and the constraints.
# Without lab nodes, labs run on the one server: it is refused.
lab_placement = {}

# Stop a lab server idle for this many seconds (0: never).
idle_timeout = 86400

# Stop any lab server older than this many seconds, idle or not (0: never).
max_age = 604800

# A token for a monitoring system to read the hub's Prometheus metrics (/hub/metrics, through the
# proxy) and nothing else: made on the hub server once, root only, in /etc/labhub/metrics-token
# (delete it and deploy to make a new one); never printed. False: /hub/metrics answers no one.
metrics_token = False

# A PEM CA bundle on the admin's machine that image builds trust (TLS-inspecting proxies). pip
# in the builds trusts only this bundle: give a full one (the system's CAs plus the proxy's).
build_ca_bundle = None

# The Python package index image builds install from (None: PyPI).
pip_index_url = None

# Registry pruning: keep the newest keep_last images per repository, tags matching keep_tags,
# and anything younger than older_than_days (None: no age floor).
registry_prune = {"keep_last": 3, "keep_tags": ["^latest$"], "older_than_days": None}

# Pruning only reports unless this is true (--data registry_prune_apply=true).
registry_prune_apply = False

# Where backups go (tasks/backup.py, and on backup_schedule once deployed): a restic repository,
# either a folder on the server ("/srv/backups/labhub") or a restic URL ("sftp:user@host:/path",
# "rest:https://host:8000/", "s3:..."). None: no backups.
backup_repository = None

# The repository's password, in a file on the admin's machine (absolute, outside this
# repository, chmod 600); uploaded root only to /etc/labhub/backup/password and never printed.
backup_password_file = None

# For an sftp: repository: the private SSH key (a file on the admin's machine, chmod 600, without
# a passphrase) the server logs in with; uploaded root only. The repository host's key is recorded at the first backup.
backup_ssh_key = None

# Back up the hub users' homes too.
backup_homes = True

# Back up the private registry's images too (what admins pushed cannot be built again).
backup_registry = True

# When the server backs itself up: a systemd calendar event ("daily", "*-*-* 02:30:00"); None:
# only when tasks/backup.py is run.
backup_schedule = "daily"

# Snapshots kept after each backup (restic forget): counts of last, hourly, daily, weekly,
# monthly, yearly; each keeps the newest snapshot of that many periods.
backup_keep = {"daily": 7, "weekly": 4, "monthly": 6}

# The snapshot tasks/restore.py restores: an ID from "labhub-backup restic snapshots", or latest.
restore_snapshot = "latest"

# Memory and CPU of each group's labs: host group -> {"mem_limit": "8G", "cpu_limit": 2,
# "mem_guarantee": "2G", "cpu_guarantee": 0.5}, any of the four (sizes as Docker writes them, in
# binary units; CPUs as a number, 0.5 is half of one). The key "*" is the default: for users
# none of whose groups is listed, and for what a group's entry leaves out. A user in several
# listed groups gets the largest of each (no limit is the largest). A limit is enforced by the
# kernel (a lab past its mem_limit is killed, and the user is told why); a guarantee is what
# the server keeps for the lab: a spawn whose guarantee the server can no longer give (with
# the running labs' guarantees, against its memory and CPUs) is refused, with a message. Read
# at each spawn from the user's host groups: a change of groups applies at the next spawn.
lab_limits = {}

# GPUs of each group's labs: host group -> "all" (every GPU of the server, shared), a number
# (that many GPUs of the lab's own, none another lab holds by a number) or a list of GPUs as
# nvidia-smi -L names them (["0", "GPU-8a1f..."], shared). A user in several groups gets the
# largest. Needs the NVIDIA driver and container toolkit on the server (on a swarm's GPU nodes,
# toolkit 1.19 or newer).
lab_gpus = {}

# The size of /dev/shm in GPU labs (PyTorch's data loaders share batches through it); None:
# Docker's 64M.
lab_shm_size = None

# The most processes and threads one lab may run at once (its pids limit; at least 128): a fork
# bomb in a lab stops there instead of filling the server's process table. Threads count too:
# a BLAS kernel on a large server runs one a core.
lab_pids_limit = 4096

# Lab nodes (the inventory group lab_nodes) run labs in a Docker Swarm that the hub server
# manages. node_labels: a lab node's swarm node labels, label -> value (strings), such as
# {"gpu": "a100", "role": "compute"}, which lab_placement's constraints (node.labels.gpu==a100)
# match; set in each node's host data (the hub server is not a lab node). A label removed here
# is removed from the node.
node_labels = {}

# The address this server's engine is reached at by the lab's other servers (swarm traffic:
# the manager's port 2377, the nodes' 7946 and 4789); None: the server's inventory name when it
# is an IP address, else its source address on its default route. Used only with lab nodes.
swarm_advertise_address = None

# Whether the swarm's overlay network encrypts the traffic between the lab's servers (IPsec,
# ESP: IP protocol 50 must pass between them, and their kernels need ESP). Labs' traffic crosses
# the lab's own network: turn it off only where that network is trusted or already encrypted
# (a VPN between the servers), or a kernel lacks ESP; every run then warns. The network is made
# once: changing this later means removing labhub-swarm (its labs stopped) first.
swarm_encrypted = True
