"""Base VM images built from Debian's packages, for a local try-out of the libvirt backend and for
the tests that boot real VMs: ``tiny`` (busybox and dropbear in an initramfs, seconds to boot under
software emulation) and ``debian12`` (a Debian 12 system with the real cloud-init and OpenSSH,
half a minute to boot there; building it needs root and debootstrap). Each builder caches its
result outside the clone (``CACHE_ROOT``), keyed on its own source, so a machine builds an image
once; ``manage.py build_vm_image`` puts one in a host's images directory."""

# The name users see for each image id a builder makes.
IMAGE_NAMES = {"tiny": "Tiny Linux", "debian12": "Debian 12"}
# The module that builds each image id (its ``image_dir()`` builds once and returns the directory).
BUILDERS = {"tiny": "benches.vm_images.tiny", "debian12": "benches.vm_images.debian"}
