"""Wait until every RPC service of the devcloud consumes its RabbitMQ queue. Run with the devcloud's venv.

    rpcwait.py PORT[/VHOST] TIMEOUT SERVICE=QUEUE ...

Exits 0 when each queue exists and has a consumer; else prints the services still missing, exits 1.
Until then a cast from an API to that service could be dropped (its queue does not exist yet).
"""

import sys
import time

import amqp


def consumers(port, queue, vhost="/"):
    try:
        with amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest", virtual_host=vhost,
                             connect_timeout=2) as conn:
            ch = conn.channel()
            _name, _messages, count = ch.queue_declare(queue, passive=True)
            return count
    except (amqp.exceptions.NotFound, OSError, amqp.exceptions.AMQPError):
        return 0


def main():
    port, _, vhost = sys.argv[1].partition("/")
    port, timeout, vhost = int(port), float(sys.argv[2]), vhost or "/"
    want = dict(arg.split("=", 1) for arg in sys.argv[3:])
    deadline = time.monotonic() + timeout
    while want:
        want = {svc: q for svc, q in want.items() if consumers(port, q, vhost) < 1}
        if not want:
            break
        if time.monotonic() > deadline:
            print(" ".join(sorted(want)))
            return 1
        time.sleep(0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
