"""chatd's contract driven by python-socketio (Debian's python3-socketio).

Usage: client_test.py URL TRANSPORT  (TRANSPORT is polling or websocket)

A second client implementation, written by nobody on chatd: connect with
dev auth, session, join, a message to a second client, history, rooms,
presence, leave. Exits 0 when every step holds, else prints what failed.
With connection state recovery on, every server event carries one more
trailing argument (the offset), so every handler takes *args.
"""

import queue
import sys
import uuid

try:
    import requests  # noqa: F401  (python-socketio's long-polling)
    import socketio
    import websocket  # noqa: F401  (python-socketio's WebSocket)
except ImportError as err:
    sys.exit(f"{err}: install Debian's python3-socketio python3-websocket python3-requests")

TIMEOUT = 5


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Client:
    def __init__(self, url, transport, user):
        self.events = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in ("session", "message", "presence", "membership"):
            self.sio.on(name, self._recorder(name))
        self.sio.connect(url, transports=[transport], auth={"userId": user}, wait_timeout=TIMEOUT)
        self.session = self.next("session")

    def _recorder(self, name):
        def record(*args):
            self.events.put((name, args[0] if args else None))
        return record

    def next(self, name, pred=lambda p: True):
        while True:
            got, payload = self.events.get(timeout=TIMEOUT)
            if got == name and pred(payload):
                return payload

    def ok(self, event, payload):
        ack = self.sio.call(event, payload, timeout=TIMEOUT)
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            raise AssertionError(f"{event} {payload!r} answered {ack!r}")
        return ack

    def close(self):
        self.sio.disconnect()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main(url, transport):
    alice, bob, room = uid("alice"), uid("bob"), uid("room")
    a = Client(url, transport, alice)
    b = Client(url, transport, bob)
    try:
        check(a.session["userId"] == alice, f"session {a.session!r}")
        check(a.session["recovered"] is False, f"session {a.session!r}")
        check(a.sio.transport() == transport, f"transport {a.sio.transport()}")
        a.ok("join", {"room": room})
        b.ok("join", {"room": room})
        joined = a.next("presence", lambda p: p and p.get("room") == room and p.get("userId") == bob)
        check(joined.get("event") in ("joined", "online"), f"presence {joined!r}")
        sent = a.ok("message", {"room": room, "text": "hello from python"})["message"]
        got = b.next("message", lambda m: m and m.get("id") == sent["id"])
        check(got == sent, f"received {got!r}, sent {sent!r}")
        history = b.ok("history", {"room": room})["messages"]
        check([m["id"] for m in history] == [sent["id"]], f"history {history!r}")
        check(a.ok("rooms", {})["rooms"] == [room], "rooms")
        users = sorted(u["userId"] for u in a.ok("presence", {"room": room})["users"])
        check(users == sorted([alice, bob]), f"presence {users!r}")
        b.ok("leave", {"room": room})
        check(b.ok("rooms", {})["rooms"] == [], "rooms after leave")
        ack = a.sio.call("rooms", timeout=TIMEOUT)
        check(ack.get("ok") is False and ack["error"]["code"] == "bad_request", f"rooms without an object: {ack!r}")
    finally:
        a.close()
        b.close()
    print(f"python-socketio over {transport}: the contract holds")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
