"""WSGI entry point for gunicorn: `gunicorn -w 4 wsgi:app`."""

from dotenv import load_dotenv

from itvsh import create_app

load_dotenv()
app = create_app()
