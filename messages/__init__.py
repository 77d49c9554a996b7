"""What every TTMS process needs to be on the bus.

- ``contracts``: pydantic models of every command, reply and event, one module per service.
- ``rpc``: commands to a service and their replies (client and server), several per AMQP
  message under load.
- ``events``: the event envelope, the transactional outbox and its relay, the idempotent
  subscriber with its inbox and dead-letter queue.
- ``db``, ``settings``, ``errors``, ``service``: the shared runtime bits.

This package is the only code in TTMS that knows AMQP.
"""
