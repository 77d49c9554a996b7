"""The bus and its contracts, and the runtime every TTMS service process shares.

The contracts (what crosses a service boundary):

- ``contracts``: pydantic models of every command, reply and event, one module per service;
  ``contracts.base`` has the caller (``Caller`` and its checks) and ``SERVICE_CALLER``.
- ``errors``: the typed errors, mapped once to the contract's codes and HTTP statuses.

The bus (the only code in TTMS that knows AMQP):

- ``broker``: one AMQP connection per process, rebuilt by itself after the broker goes away;
  ``BrokerClient``, the base of whatever keeps a channel on it.
- ``rpc``: commands to a service and their replies (client and server), several per AMQP
  message under load; ``RpcClient.ask`` sends a typed command.
- ``events``: the event envelope's topology, the transactional outbox and its relay, the
  idempotent subscriber with its inbox and dead-letter queue.
- ``delay``: a delay queue (a payload back in a handler some seconds later).
- ``streams``: reading the event log (the stream queue of every event).
- ``deadletters``: listing, showing and re-driving dead-lettered events.

The runtime of a service process:

- ``service``: ``Handlers`` (a service's commands, events, start-up tasks and per-process
  state) and ``Service`` (the one place that wires them to the broker and the database).
- ``db``: the database (transactions that carry their events into the outbox, plain asyncmy
  on hot paths, the deadlock retry, the watch that answers 503 while the server is frozen,
  ``run_on_server`` for statements outside any service's database).
- ``settings``: the one settings object (``TTMS_*``), and the list of services.
- ``tokens``: access tokens, minted by user_svc and verified by the gateway.
- ``tables``: the columns every service's ``tables.py`` declares alike (keys, references,
  timestamps).
- ``qr``: a check-in code drawn as a QR code (SVG), for the gateway and the ticket mail.

Nothing here imports a service package, and the local launcher (``launcher/``) imports
nothing from here: it runs before the venv exists.
"""
