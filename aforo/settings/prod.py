from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")  # required in production: no default
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
