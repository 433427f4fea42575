"""${{ values.name }}: ${{ values.description }}"""

from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = ${{ values.port }}


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", PORT), Health).serve_forever()
