"""A stand-in for the desktop portal, on a private D-Bus session bus: its Screenshot and GlobalShortcuts
interfaces and the host app Registry.

    python fake_portal.py PICTURE ANSWER [--delay SECONDS] [--press ACTION,...] [--no-shortcuts]

It behaves as xdg-desktop-portal does. A method that answers later returns its request's object path, built from
the caller's unique name and its `handle_token`, and the Response signal then comes on that path.
- Screenshot: after DELAY seconds (a user reading the desktop's question), the URI of a fresh copy of PICTURE
  (the caller may delete it) when ANSWER is "allow", the "cancelled" code when it is "deny".
- CreateSession and BindShortcuts: a session, then every shortcut bound to its preferred trigger; then each
  ACTION of --press is pressed (the Activated signal), half a second apart. With --no-shortcuts the interface is
  missing, as on desktops without it.
Prints "ready" once it owns the portal's name, then a line for each call it answered.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import Proxy, open_dbus_connection

PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"


def main(options: argparse.Namespace) -> None:
    connection = open_dbus_connection(bus="SESSION")
    Proxy(message_bus, connection).RequestName("org.freedesktop.portal.Desktop", 4)  # 4: do not queue
    print("ready", flush=True)
    while True:
        call = connection.receive()
        fields = call.header.fields
        if call.header.message_type != MessageType.method_call:
            continue
        interface, member = fields.get(HeaderFields.interface), fields.get(HeaderFields.member)
        sender = fields[HeaderFields.sender].lstrip(":").replace(".", "_")

        def respond(request_options: dict, code: int, results: dict) -> None:
            request = f"{PORTAL_PATH}/request/{sender}/{request_options['handle_token'][1]}"
            connection.send(new_method_return(call, "o", (request,)))
            emitter = DBusAddress(request, interface="org.freedesktop.portal.Request")
            connection.send(new_signal(emitter, "Response", "ua{sv}", (code, results)))

        if member == "Register":
            connection.send(new_method_return(call))
            print(f"registered {call.body[0]}", flush=True)
        elif member == "Screenshot":
            _parent, request_options = call.body
            time.sleep(options.delay)
            if options.answer == "allow":
                copy = Path(tempfile.mkdtemp()) / "Screenshot.png"
                shutil.copy(options.picture, copy)
                respond(request_options, 0, {"uri": ("s", copy.as_uri())})
                print(f"answered allow {copy.as_uri()}", flush=True)
            else:
                respond(request_options, 1, {})
                print("answered deny", flush=True)
        elif interface == SHORTCUTS and not options.no_shortcuts and member == "CreateSession":
            (request_options,) = call.body
            session = f"{PORTAL_PATH}/session/{sender}/{request_options['session_handle_token'][1]}"
            respond(request_options, 0, {"session_handle": ("s", session)})
        elif interface == SHORTCUTS and not options.no_shortcuts and member == "BindShortcuts":
            session, shortcuts, _parent, request_options = call.body
            bound = [(action, {"description": info["description"],
                               "trigger_description": ("s", info["preferred_trigger"][1])})
                     for action, info in shortcuts]
            respond(request_options, 0, {"shortcuts": ("a(sa{sv})", bound)})
            print("bound " + " ".join(f"{action}={info['preferred_trigger'][1]}" for action, info in shortcuts),
                  flush=True)
            for action in filter(None, options.press.split(",")):
                time.sleep(0.5)
                connection.send(new_signal(DBusAddress(PORTAL_PATH, interface=SHORTCUTS), "Activated", "osta{sv}",
                                           (session, action, int(time.time() * 1000), {})))
        else:
            connection.send(new_error(call, "org.freedesktop.DBus.Error.UnknownMethod"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("picture", type=Path)
    parser.add_argument("answer", choices=("allow", "deny"))
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--press", default="")
    parser.add_argument("--no-shortcuts", action="store_true")
    main(parser.parse_args())
