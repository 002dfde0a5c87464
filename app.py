"""segapp web app: ``python app.py`` (HOST/PORT from the environment) or ``gunicorn app:server``."""

import sys

from segapp.config import get_settings
from segapp.errors import SegappError
from segapp.ui import create_app

try:
    settings = get_settings()
    app = create_app(settings)
except SegappError as e:  # bad setting or Redis unreachable: one line, not a traceback
    if __name__ != "__main__":
        raise
    print(f"segapp: error: {e}", file=sys.stderr)
    raise SystemExit(2)
server = app.server  # for gunicorn: ``gunicorn app:server``

if __name__ == "__main__":
    print(f"segapp: serving on http://{settings.host}:{settings.port} ({settings.masked()['mode']})", flush=True)
    app.run(host=settings.host, port=settings.port, debug=False)
