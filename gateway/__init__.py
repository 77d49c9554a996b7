"""The REST gateway: validate, authorise, call a service over the bus, map the answer.

It holds no business rules. Routes are declared as data in ``gateway/routes/`` (one module per
API.md section); the same declarations drive request handling and the OpenAPI document.
"""
