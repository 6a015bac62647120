"""The pure detection core: request.v1 records in, alerts and campaign changes out.

Nothing here imports Faust, Kafka or a metrics client (``tests/unit/detection/test_purity.py``
checks it in a fresh interpreter): ``detector replay``, the worker and the tests run the same code.
"""
