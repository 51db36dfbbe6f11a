"""A stand-in for the desktop portal's Screenshot interface, on a private D-Bus session bus.

    python fake_portal.py PICTURE ANSWER [DELAY]   (ANSWER: "allow" or "deny"; DELAY: seconds before answering,
                                                    as a user reading the desktop's question takes)

It behaves as xdg-desktop-portal does: Screenshot(parent_window, options) returns the request's object path, built
from the caller's unique name and its `handle_token`, and then the Response signal comes on that path, with the
URI of a fresh copy of PICTURE (the caller may delete it) or the "cancelled" code. Prints "ready" once it owns
the portal's name.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import Proxy, open_dbus_connection

PORTAL_PATH = "/org/freedesktop/portal/desktop"


def main(picture: Path, answer: str, delay: float = 0.0) -> None:
    connection = open_dbus_connection(bus="SESSION")
    Proxy(message_bus, connection).RequestName("org.freedesktop.portal.Desktop", 4)  # 4: do not queue
    print("ready", flush=True)
    while True:
        call = connection.receive()
        fields = call.header.fields
        if call.header.message_type != MessageType.method_call or fields.get(HeaderFields.member) != "Screenshot":
            continue
        _parent, options = call.body
        sender = fields[HeaderFields.sender].lstrip(":").replace(".", "_")
        request = f"{PORTAL_PATH}/request/{sender}/{options['handle_token'][1]}"
        connection.send(new_method_return(call, "o", (request,)))
        time.sleep(delay)
        if answer == "allow":
            copy = Path(tempfile.mkdtemp()) / "Screenshot.png"
            shutil.copy(picture, copy)
            code, results = 0, {"uri": ("s", copy.as_uri())}
        else:
            code, results = 1, {}
        emitter = DBusAddress(request, interface="org.freedesktop.portal.Request")
        connection.send(new_signal(emitter, "Response", "ua{sv}", (code, results)))
        print(f"answered {answer} {results['uri'][1] if results else ''}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
