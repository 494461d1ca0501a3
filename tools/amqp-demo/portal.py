#!/usr/bin/python3
"""A stand-in for the helsenorge portal on an AMQP 1.0 service bus (Debian's python3-qpid-proton).

  portal.py send URL QUEUE FILE --from HERID --to HERID [--subject FUNCTION]
      puts FILE (a MsgHead document) on QUEUE with the properties helsenorge sets
      (message-id, to, reply-to, subject, content-type; fromHerId, toHerId, cpaId,
      applicationTimeStamp) and waits for the AMQP broker's accept.
  portal.py receive URL QUEUE [--timeout SECONDS] [--count N]
      takes N messages (default 1) from QUEUE, prints their properties and the first line of the
      body's MsgHead type, and exits 1 when fewer arrived within the timeout.

For the demo in tools/amqp-demo/run.sh; not part of the broker.
"""
import argparse
import re
import sys
import time
import uuid

from proton import Message, Terminus, Timeout
from proton.reactor import LinkOption
from proton.utils import BlockingConnection


class DurableQueue(LinkOption):
    """RabbitMQ declares a /queue/ address on attach: durable, as edibroker declares it (a
    mismatch makes RabbitMQ refuse the link)."""

    def apply(self, link):
        terminus = link.target if link.is_sender else link.source
        terminus.durability = Terminus.CONFIGURATION


def send(args):
    with open(args.file, "rb") as f:
        body = f.read()
    reply_kind = "syncreply" if args.queue.endswith("_sync") else args.queue.rsplit("_", 1)[-1]
    m = Message(
        id=str(uuid.uuid4()),
        address=args.queue,
        reply_to="%s_%s" % (getattr(args, "from"), reply_kind),
        subject=args.subject,
        content_type="text/plain",
        body=body,
        durable=True,
        properties={
            "fromHerId": int(getattr(args, "from")),
            "toHerId": int(args.to),
            "cpaId": str(uuid.uuid4()),
            "applicationTimeStamp": int(time.time() * 1000),
        },
    )
    conn = BlockingConnection(args.url, timeout=args.timeout)
    try:
        conn.create_sender("/queue/" + args.queue, options=DurableQueue()).send(m, timeout=args.timeout)
    finally:
        conn.close()
    print("sent message-id %s to %s (%d bytes)" % (m.id, args.queue, len(body)))
    return 0


def receive(args):
    conn = BlockingConnection(args.url, timeout=args.timeout)
    got = 0
    try:
        r = conn.create_receiver("/queue/" + args.queue, credit=args.count, options=DurableQueue())
        while got < args.count:
            try:
                m = r.receive(timeout=args.timeout)
            except Timeout:
                break
            body = m.body if isinstance(m.body, (bytes, bytearray)) else str(m.body).encode()
            text = body.decode("utf-8", "replace")
            kind = re.search(r'<(?:\w+:)?(?:Msg)?Type V="([^"]+)"', text)
            status = re.search(r'<(?:\w+:)?Status V="([^"]+)"', text)
            props = {k: (int(v) if isinstance(v, int) else v) for k, v in (m.properties or {}).items()}
            print("received on %s: message-id=%s subject=%s fromHerId=%s toHerId=%s type=%s%s" % (
                args.queue, m.id, m.subject, props.get("fromHerId"), props.get("toHerId"),
                kind.group(1) if kind else "?", (" apprec-status=" + status.group(1)) if status and kind and kind.group(1) == "APPREC" else ""))
            for k in ("errorCondition", "errorDescription"):
                if k in props:
                    print("  %s: %s" % (k, props[k]))
            r.accept()
            got += 1
    finally:
        conn.close()
    return 0 if got >= args.count else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("url")
    s.add_argument("queue")
    s.add_argument("file")
    s.add_argument("--from", required=True)
    s.add_argument("--to", required=True)
    s.add_argument("--subject", default="DIALOG_INNBYGGER_EKONTAKT")
    s.add_argument("--timeout", type=float, default=10)
    r = sub.add_parser("receive")
    r.add_argument("url")
    r.add_argument("queue")
    r.add_argument("--timeout", type=float, default=15)
    r.add_argument("--count", type=int, default=1)
    args = p.parse_args()
    return send(args) if args.cmd == "send" else receive(args)


if __name__ == "__main__":
    sys.exit(main())
