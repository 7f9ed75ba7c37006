"""moto's server finds the backend of every request by listing its own package's directory: a listdir and
a stat per module (about two hundred), under the one lock every request takes, on every request. In a soak
that was a tenth of the runtime's CPU, and it held the other requests back while it ran. The modules do
not change while the server runs: `install` lists them once.
"""

from __future__ import annotations

from functools import cache


@cache
def install() -> None:
    """List moto's modules once for the in-process emulator's request dispatch (once per process; a second
    listing, should two runtimes start at the same moment, lists the frozen set and changes nothing)."""
    from moto import backends

    modules = frozenset(backends.list_of_moto_modules())
    # Its one caller, the server's dispatcher, asks only whether a name is one of them.
    backends.list_of_moto_modules = lambda: modules
