"""
The lab servers labhub manages: edit the host name and the SSH login (an account with sudo).
Per-host settings go in the data mapping; defaults and what each setting means are in
group_data/all.py.

    pyinfra inventory.py deploy.py --dry     # what would change
    pyinfra inventory.py deploy.py           # apply
"""

lab_servers = [
    (
        "lab.example.org",
        {
            "ssh_user": "admin",
            "_sudo": True,
            "hub_users": ["alice", "bob"],
            "hub_admins": ["alice"],
        },
    ),
]
