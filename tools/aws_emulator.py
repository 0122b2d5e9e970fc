"""The local AWS API emulator: moto's server app, with requests handled one at a time.

moto applies a TransactWriteItems one operation after another and rolls back by restoring a copy
of the table, without a lock, so under moto_server's threads a concurrent reader can see half a
transaction and a rollback can undo another writer. DynamoDB transactions are atomic; handling one
request at a time makes the emulator honour that. Connections stay threaded (keep-alive works).

Usage: python tools/aws_emulator.py --host 127.0.0.1 --port 4566
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class OneAtATime:
    """WSGI middleware: one request inside the app at a time, its body produced under the lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = OneAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
