"""Base VM images built from Debian's packages, for a local try-out of the libvirt backend and for
the tests that boot real VMs: ``tiny`` (busybox and dropbear in an initramfs, seconds to boot under
software emulation). Each builder caches its result outside the clone (``CACHE_ROOT``), keyed on
its own source, so a machine builds an image once; ``manage.py build_vm_image`` puts one in a host's
images directory."""
