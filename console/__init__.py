"""The web console: server-rendered pages over the request log, the runtime and the key store (``/chaperone/ui``).

``mount(app, log)`` adds its routes to the proxy's application (before the admin catch-all). Pages are
Jinja2 templates with SVG charts drawn here, one small script of our own, nothing fetched from elsewhere.
Every read of the request log runs in the console's own two threads with a deadline, and at most a few
page renders run at once, so the console cannot starve the gateway.
"""

from console.app import CONSOLE_PREFIX_ENV, mount

__all__ = ["CONSOLE_PREFIX_ENV", "mount"]
