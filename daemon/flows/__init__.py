"""The imperative shell's steps: each reads the store, asks the core to decide, and writes the
decision, its outbox rows and its event in one transaction. No step talks to a mail server
directly; only the sender (flows/sending.py) and the watchers do."""
