"""The one-machine dev platform's process supervisor (`python -m aforo.devserver.supervisor`).

Standard library only and no Django: it runs before and around the Django processes it starts."""
