"""segapp web app: ``python app.py`` (HOST/PORT from the environment) or ``gunicorn app:server``."""

from segapp.config import get_settings
from segapp.ui import create_app

settings = get_settings()
app = create_app(settings)
server = app.server  # for gunicorn: ``gunicorn app:server``

if __name__ == "__main__":
    print(f"segapp: serving on http://{settings.host}:{settings.port} ({settings.masked()['mode']})", flush=True)
    app.run(host=settings.host, port=settings.port, debug=False)
