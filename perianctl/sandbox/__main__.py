"""``python -m perianctl.sandbox run|start|stop|status ...`` -- the sandbox without the root CLI.

The detached server and the test plugin start the sandbox this way, so they depend neither on
the root command's global options nor on its start-up cost.
"""

from perianctl.commands.sandbox import main

main()
