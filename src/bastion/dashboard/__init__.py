"""The web dashboard for customers and operators: server-rendered pages (Jinja2 + htmx, every
asset shipped in the package), mounted under ``/dashboard/`` on the public listener.

Signed-in state is a server-side session in a ``__Host-`` cookie; every state-changing request
needs the session's CSRF token and a same-origin ``Origin``.  The pages call the same use
cases as the CLI (``bastion.admin``).
"""
