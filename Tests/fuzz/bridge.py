"""A TCP-to-Unix-socket bridge: Schemathesis speaks HTTP over TCP, corrald listens on a Unix
socket. Each TCP connection gets its own connection to the socket; bytes are copied both ways
unchanged, so what the fuzzer sees is exactly what the daemon answered.

    python3 bridge.py HOST:PORT SOCKET
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def serve(host, port, socket_path):
    async def handle(tcp_reader, tcp_writer):
        try:
            unix_reader, unix_writer = await asyncio.open_unix_connection(socket_path)
        except OSError as error:
            print(f"bridge: cannot connect to {socket_path}: {error}", file=sys.stderr)
            tcp_writer.close()
            return
        await asyncio.gather(pipe(tcp_reader, unix_writer), pipe(unix_reader, tcp_writer))

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) != 3 or ":" not in sys.argv[1]:
        sys.exit("usage: bridge.py HOST:PORT SOCKET")
    host, port = sys.argv[1].rsplit(":", 1)
    asyncio.run(serve(host, int(port), sys.argv[2]))


if __name__ == "__main__":
    main()
