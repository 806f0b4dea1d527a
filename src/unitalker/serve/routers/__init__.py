"""The service's endpoints, one router per room.

* :mod:`.health`: ``GET /health`` (liveness and load).
* :mod:`.models`: ``GET /v1/models``, ``/v1/conventions``, ``/v1/mesh/{convention}``.
* :mod:`.animate`: ``POST /v1/animate`` (a whole clip in, frames or an export file out).
* :mod:`.stream`: ``WS /v1/stream`` (:class:`~.stream.StreamSession`, one per connection).

Each reads the app's :class:`~unitalker.serve.state.ServeState` from the connection.
"""
