"""Forward TCP from the host's loopback into the node's network namespace.

The node's namespace has no link to the host (no veth: the host's addresses stay as they are),
so its API server is reachable from the host only through this process. It binds its
listeners on 127.0.0.1 in the host's namespace first, then moves itself into the node's
namespace (setns), where every connection it opens goes to 127.0.0.1 there. A socket keeps
the namespace it was created in, so both ends stay on a loopback.

    python -m pagestream.stack.node.forward --netns /proc/PID/ns/net --map 36443:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Sequence

CLONE_NEWNET = 0x40000000


def enter_network_namespace(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(listeners: list[tuple[socket.socket, int]]) -> None:
    async def relay(
        target: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    servers = []
    for sock, target in listeners:

        async def handler(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, target: int = target
        ) -> None:
            await relay(target, r, w)

        servers.append(await asyncio.start_server(handler, sock=sock))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--netns", required=True, help="a network namespace file (/proc/PID/ns/net)"
    )
    parser.add_argument(
        "--map", action="append", required=True, metavar="HOST_PORT:TARGET_PORT", dest="maps"
    )
    args = parser.parse_args(argv)
    listeners = []
    for item in args.maps:
        host_port, _, target = item.partition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(host_port)))
        sock.listen(128)
        sock.setblocking(False)
        listeners.append((sock, int(target)))
    enter_network_namespace(args.netns)
    asyncio.run(_serve(listeners))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
