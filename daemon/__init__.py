"""parting: notice unresponsive clients and part with them politely, reviewed by two people."""

__version__ = "0.1.0"
