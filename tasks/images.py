"""
The lab images: each of lab_images built on the host and pushed to the private registry as
<registry>/<name>:<version>, the tag the hub spawns; nothing rebuilt or pushed when nothing
changed. The registry runs in the hub stack (tasks/hub.py).

    pyinfra inventory.py tasks/images.py
"""

from io import BytesIO

from pyinfra import host
from pyinfra.operations import files

from labhub import hub
from labhub.operations import images
from labhub.settings import get_settings

settings = get_settings(host)
ca_bundle = hub.ca_bundle(settings)

files.directory(
    name=f"Create {hub.remote_path(settings, 'build')}",
    path=hub.remote_path(settings, "build"),
    mode="0755",
)

for lab in settings.lab_images:
    image = f"{settings.registry_address}/{lab.ref}"
    context = hub.lab_context(lab.context)
    remote = hub.remote_path(settings, "build", f"lab-{lab.name.replace('/', '-')}-{lab.version}")
    args = hub.build_args(settings, lab.base_image or settings.lab_base_image)

    files.sync(
        name=f"Upload the build context of {lab.ref} ({context})",
        src=str(context),
        dest=remote,
        delete=True,
        exclude=f"*/{hub.CA_FILE}",
    )
    files.put(
        name=f"Upload the CA bundle the {lab.ref} build trusts",
        src=BytesIO(ca_bundle),
        dest=f"{remote}/{hub.CA_FILE}",
        mode="0644",
    )
    content_hash = hub.context_hash(context, ca_bundle, args)
    images.built(
        name=f"Build {image}",
        image=image,
        context=remote,
        content_hash=content_hash,
        build_args=args,
    )
    images.pushed(
        name=f"Push {image} to the registry",
        image=image,
        registry=settings.registry_address,
        content_hash=content_hash,
    )
