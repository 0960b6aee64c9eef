"""Running dr-panel for real: the worker that drains the outboxes and runs the schedule
(``worker``, ``schedule``, ``jobs``), and what the web processes need behind a proxy (``web``)."""
