"""The panel's review work on a case: information requests to agencies and their returns, panel
meetings, findings and learning, actions and safety plans.

``models`` (every table), one service module per part (``services`` for requests and returns,
``meetings``, ``findings``, ``actions``), the pages in ``routes/`` (one module per part, one
blueprint), the JSON API in ``api`` with its models in ``schemas``, the forms in ``forms`` and the
daily commands in ``cli``."""
