"""Serve a folder on 127.0.0.1 with the MIME types browsers insist on for wasm and ES modules.
Usage: serve.py FOLDER PORT [--quiet] [--isolated]
--isolated sends COOP/COEP, so pages are crossOriginIsolated (SharedArrayBuffer: threaded wasm such as
onnxruntime-web's and llama.cpp's, which the benchmarks measure veer against)."""
import functools
import http.server
import sys

folder, port = sys.argv[1], int(sys.argv[2])
quiet = "--quiet" in sys.argv[3:]
isolated = "--isolated" in sys.argv[3:]


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
    }

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        # Browser tests fetch models from another origin (the test runner's own server).
        self.send_header("Access-Control-Allow-Origin", "*")
        if isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        if not quiet:
            super().log_message(*args)


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=folder))
print(f"veer: serving {folder} at http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
