#!/usr/bin/env python3
"""A real SMTP server for the tests (Debian's python3-aiosmtpd), on 127.0.0.1.

    smtp_server.py --dir MAILDIR [--port N]

Listens on 127.0.0.1:N (0: the kernel picks), prints "listening PORT" once it accepts, then for
every message it accepted writes MAILDIR/NNNN.json ({"mailFrom", "rcptTos", "from", "to",
"subject", "contentType", "body" (decoded text), "raw"}) and prints "message NNNN". Recipients
starting with "reject" are refused with 550 (a permanent SMTP failure). Stops on SIGTERM.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_content() if not msg.is_multipart() else ""
        self.count += 1
        name = "%04d" % self.count
        record = {
            "mailFrom": envelope.mail_from,
            "rcptTos": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "contentType": msg.get_content_type(),
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.directory, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(self.directory, name + ".json"))
        print("message " + name, flush=True)
        return "250 Message accepted for delivery"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = Handler(args.dir)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="smtp.test"), "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print("listening %d" % port, flush=True)
    await stop
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
