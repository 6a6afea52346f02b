"""
The lab images: each of lab_images built on the host and pushed to the private registry as
<registry>/<name>:<version>, the tag the hub spawns; nothing rebuilt or pushed when nothing
changed. The registry runs in the hub stack (tasks/hub.py).

    pyinfra inventory.py tasks/images.py
"""

from pyinfra import host

from labhub import stack
from labhub.operations import images, tree
from labhub.settings import get_settings

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
build_dir = project.path("build")

# Read with everything under hub_dir in one command, as the build contexts are.
tree.written(name=f"Create {build_dir}", files={}, folders=[build_dir])

for lab in stack.lab_builds(settings):
    images.context(
        name=f"Upload the build context of {lab.image} ({lab.context})", **lab.context_arguments()
    )
    images.built(name=f"Build {lab.image}", **lab.build_arguments())
    images.pushed(
        name=f"Push {lab.image} to the registry",
        image=lab.image,
        registry=settings.registry_address,
        content_hash=lab.content_hash,
    )
