"""A loopback HTTP server for the download tests: it serves files by name and misbehaves on demand.

Only 127.0.0.1 is ever contacted. Each file may be given a list of behaviours, used one per request, in order:
  'ok'            serve the file (206 and Content-Range for a Range request)
  404, 403, 500   answer with that status
  ('cut', n)      announce the whole remaining size, send n bytes, and close the connection
  'ignore_range'  serve the whole file with 200 even when a range was asked
  'html'          answer 200 with an HTML page
  ('stall', n)    send the headers and n bytes, then nothing for 3 s
  'loop'          redirect to the same URL, for ever
  'no_length'     serve the whole file with 200 and no Content-Length: its end is where the connection closes
When the list is used up, requests are served 'ok'.
"""

import http.server
import threading
import time

HTML_PAGE = b'<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users ' \
            b'have viewed or downloaded this file recently.</body></html>'


class LoopbackServer:
  """Serves `files` ({name: bytes}) at http://127.0.0.1:<port>/<name>; use as a context manager."""

  def __init__(self, files=None):
    self.files = dict(files or {})
    self.behaviours = {}
    self.requests = []  # (name, Range header or None), in order
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      protocol_version = 'HTTP/1.1'

      def log_message(self, *args):
        pass

      def do_GET(self):  # noqa: N802 (the name http.server calls)
        name = self.path.lstrip('/').split('?')[0]
        asked = self.headers.get('Range')
        server.requests.append((name, asked))
        queue = server.behaviours.setdefault(name, [])
        behaviour = queue.pop(0) if queue else 'ok'
        if behaviour == 'loop':
          queue.insert(0, 'loop')
          self.send_response(302)
          self.send_header('Location', self.path)
          self.send_header('Content-Length', '0')
          self.end_headers()
          return
        if name not in server.files:
          behaviour = 404
        if isinstance(behaviour, int):
          self._answer(behaviour, b'nothing here', 'text/plain')
        elif behaviour == 'html':
          self._answer(200, HTML_PAGE, 'text/html; charset=utf-8')
        else:
          self._serve(server.files[name], None if behaviour == 'ignore_range' else asked, behaviour)

      def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

      def _serve(self, data, asked, behaviour):
        start = int(asked.split('=')[1].split('-')[0]) if asked else 0
        if start >= len(data) and asked:
          self.send_response(416)
          self.send_header('Content-Range', f'bytes */{len(data)}')
          self.send_header('Content-Length', '0')
          self.end_headers()
          return
        if behaviour == 'no_length':
          self.send_response(200)
          self.send_header('Content-Type', 'application/octet-stream')
          self.send_header('Connection', 'close')
          self.end_headers()
          self.wfile.write(data)
          self.wfile.flush()
          self.close_connection = True
          return
        self.send_response(206 if asked else 200)
        self.send_header('Content-Type', 'application/octet-stream')
        if asked:
          self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if isinstance(behaviour, tuple) and behaviour[0] == 'cut':
          self.wfile.write(body[:behaviour[1]])
          self.wfile.flush()
          self.close_connection = True
          return
        if isinstance(behaviour, tuple) and behaviour[0] == 'stall':
          self.wfile.write(body[:behaviour[1]])
          self.wfile.flush()
          time.sleep(3)
          self.close_connection = True
          return
        self.wfile.write(body)

    self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    self._server.daemon_threads = True
    self.url = f'http://127.0.0.1:{self._server.server_address[1]}/'
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._server.shutdown()
    self._server.server_close()
