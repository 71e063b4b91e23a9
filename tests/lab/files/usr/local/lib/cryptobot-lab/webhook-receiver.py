"""A webhook receiver for the lab: answers every POST with 200 and prints one JSON line per
request ({"path": ..., "body": <the JSON body>}) on stdout, flushed at once."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        self.send_response(200)
        self.end_headers()
        print(json.dumps({"path": self.path, "body": parsed}), flush=True)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
