"""Base VM images built from Debian's packages, for a local try-out of the libvirt backend and for
the tests that boot real VMs: ``tiny`` (busybox and dropbear in an initramfs, seconds to boot under
software emulation). Each builder caches its result outside the clone (``CACHE_ROOT``), keyed on
its own source, so a machine builds an image once; ``manage.py build_vm_image`` puts one in a host's
images directory."""

# The name users see for each image id a builder makes.
IMAGE_NAMES = {"tiny": "Tiny Linux"}
# The module that builds each image id (its ``image_dir()`` builds once and returns the directory).
BUILDERS = {"tiny": "benches.vm_images.tiny"}
