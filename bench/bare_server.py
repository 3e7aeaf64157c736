"""The baseline for the collector benchmark: a bare aiohttp server answering the same GIF.

It does no tracking work at all (no cookie, no payload, no Kafka): the ratio
collector/bare is what the collector's work costs on top of aiohttp itself.

    python bench/bare_server.py PORT
"""
import asyncio
import sys

from aiohttp import web

from collector.app import PIXEL


async def pixel(_request):
    return web.Response(body=PIXEL, content_type="image/gif")


async def post(request):
    await request.read()
    return web.Response(text="ok")


async def main(port: int) -> None:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_get("/i", pixel)
    app.router.add_post("/{vendor}/{version}", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
