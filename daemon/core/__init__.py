"""Pure decisions: no IO, no clock, no asyncio, imapclient, aiosmtplib, sqlite, yaml or jinja2."""
